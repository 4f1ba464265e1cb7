import { readFile } from "node:fs/promises";
import { M365MailError } from "@m365-mail/core";
import { type BridgeConfig, validateBridgeConfig } from "./config-schema.js";

/**
 * Reads and validates the bridge's config file (JSON). Settings the file leaves out of `m365` come from
 * the environment (`M365_*`), so `m365-mail emulator --write-env` output works without editing the file.
 */
export async function loadBridgeConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BridgeConfig> {
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
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `the bridge config file ${path} is not valid JSON (${(error as Error).message})`,
      { source: "bridge", cause: error, hint: "Fix the JSON syntax; docs/bridge.md has a complete example." },
    );
  }
  return validateBridgeConfig(parsed, env);
}
