import { readFile } from "node:fs/promises";
import { M365MailError } from "@m365-mail/core";
import { parse as parseYaml } from "yaml";
import { type BridgeConfig, validateBridgeConfig } from "./config-schema.js";

/**
 * Reads and validates the bridge's config file: JSON, or YAML when its name ends in `.yaml`/`.yml`.
 * Settings the file leaves out of `m365` come from the environment (`M365_*`), so
 * `m365-mail emulator --write-env` output works without editing the file.
 */
export async function loadBridgeConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BridgeConfig> {
  return validateBridgeConfig(await readBridgeConfigFile(path), env);
}

/** The config file's content, parsed but not validated. */
export async function readBridgeConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot read the bridge config file ${path}`, {
      source: "bridge",
      cause: error,
      hint: "Check the path given to --config and that this user may read it.",
    });
  }
  const yaml = /\.ya?ml$/i.test(path);
  let parsed: unknown;
  try {
    parsed = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `the bridge config file ${path} is not valid ${yaml ? "YAML" : "JSON"} (${(error as Error).message.split("\n")[0]})`,
      {
        source: "bridge",
        cause: error,
        hint: `Fix the ${yaml ? "YAML" : "JSON"} syntax; docs/bridge.md has a complete example.`,
      },
    );
  }
  return parsed;
}
