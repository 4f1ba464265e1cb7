import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseEnv } from "node:util";
import type { RopcEngine } from "@m365-mail/auth-ropc";
import {
  M365_SETTINGS,
  type M365AuthMethod,
  type M365Cloud,
  type M365Federation,
  m365PasswordSource,
  readPasswordFile,
  registerSecret,
  resolveM365Settings,
} from "@m365-mail/core";
import { usageError } from "./exit-codes.js";
import type { Output } from "./output.js";
import { promptHidden } from "./prompt.js";

/** A cloud preset plus the origin Graph traffic goes to (the emulator serves Graph on its own port). */
export type CliCloud = M365Cloud;

// One table (core's, shared with the server and the bridge) drives flags, environment and profiles.
export const SETTINGS = M365_SETTINGS;

export type SettingName = keyof typeof SETTINGS;

/** The flags that every command accepts (connection settings and output). */
export const GLOBAL_OPTIONS = {
  json: { type: "boolean" },
  "no-color": { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
  profile: { type: "string" },
  config: { type: "string" },
  "env-file": { type: "string" },
  password: { type: "string" },
  "password-file": { type: "string" },
  ...Object.fromEntries(
    Object.values(SETTINGS).map((s) => [
      s.flag,
      { type: "string", ...(s.flag === "username" ? { short: "u" } : {}) },
    ]),
  ),
} as const satisfies Record<string, { type: "string" | "boolean"; short?: string }>;

/** How the CLI signs in: the password grant, or a stored device-code sign-in (`m365-mail login --device-code`). */
export type AuthMethod = M365AuthMethod;

export type Flags = Record<string, string | boolean | string[] | undefined>;

/** Where each setting came from, for `doctor` and error messages. */
export type Origin = "flag" | "environment" | ".env" | "profile" | "default" | "prompt";

export interface ResolvedConfig {
  readonly tenantId?: string;
  readonly clientId?: string;
  readonly username?: string;
  readonly cloud: CliCloud;
  /** PEM of the extra CA to trust (the emulator's), read from caFile. */
  readonly ca?: string;
  readonly caFile?: string;
  readonly engine?: RopcEngine;
  /** Federated (AD FS) users: auto (default), ws-trust or direct. */
  readonly federation?: M365Federation;
  /** @default "ropc" */
  readonly auth: AuthMethod;
  /** The encrypted file a device-code sign-in is stored in. @default token-cache.json beside the config file */
  readonly tokenCacheFile: string;
  readonly profile?: string;
  readonly configPath?: string;
  readonly envFile?: string;
  readonly origins: Readonly<Partial<Record<SettingName | "password", Origin>>>;
  /** The environment the command sees: the process's, over the `.env` file's. */
  readonly env: NodeJS.ProcessEnv;
  /** How to get the password, read only when a command needs it. */
  readonly password: PasswordSource | undefined;
}

export interface PasswordSource {
  readonly origin: Origin;
  /** E.g. "--password-file /run/secrets/m365"; never the password. */
  readonly description: string;
  read(): string;
}

export interface Credentials {
  tenantId: string;
  clientId: string;
  username: string;
  password: string;
}

/** The config file: named profiles of settings. */
export interface ConfigFile {
  defaultProfile?: string;
  profiles?: Record<string, Partial<Record<string, string | number>>>;
}

export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "m365-mail", "config.json");
}

function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  return path === "~" || path.startsWith("~/") ? join(env.HOME || homedir(), path.slice(1)) : path;
}

function readEnvFile(path: string, explicit: boolean): Record<string, string> {
  if (!existsSync(path)) {
    if (explicit) {
      throw usageError(`the env file ${path} does not exist`, "Check the path given to --env-file.");
    }
    return {};
  }
  try {
    return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
  } catch (error) {
    throw usageError(
      `cannot read the env file ${path}`,
      "Check its permissions; lines look like KEY=value.",
      error,
    );
  }
}

function readConfigFile(path: string, explicit: boolean): ConfigFile | undefined {
  if (!existsSync(path)) {
    if (explicit) {
      throw usageError(
        `the config file ${path} does not exist`,
        "Check the path given to --config or M365_CONFIG.",
      );
    }
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw usageError(
      `the config file ${path} is not valid JSON`,
      'Write it as { "defaultProfile": "work", "profiles": { "work": { "tenantId": "…", "clientId": "…", "username": "…" } } }.',
      error,
    );
  }
  const file = parsed as ConfigFile;
  if (
    !file ||
    typeof file !== "object" ||
    (file.profiles !== undefined && typeof file.profiles !== "object")
  ) {
    throw usageError(
      `the config file ${path} has no "profiles" object`,
      'Write it as { "profiles": { "name": { … } } }.',
    );
  }
  return file;
}

/**
 * Settings from, highest first: command-line flags, the environment (a `.env` file fills what the
 * environment lacks), the selected profile of the config file. Nothing is read from the network.
 */
export function loadConfig(flags: Flags, processEnv: NodeJS.ProcessEnv, out: Output): ResolvedConfig {
  const flag = (name: string): string | undefined => {
    const value = flags[name];
    return typeof value === "string" ? value : undefined;
  };
  const envFileFlag = flag("env-file");
  const envFile = resolve(envFileFlag ?? ".env");
  const dotenv = readEnvFile(envFile, envFileFlag !== undefined);
  const env: NodeJS.ProcessEnv = { ...dotenv, ...processEnv };
  const fromEnv = (name: string): [string, Origin] | undefined => {
    if (processEnv[name]) return [processEnv[name]!, "environment"];
    if (dotenv[name]) return [dotenv[name]!, ".env"];
    return undefined;
  };

  const configFlag = flag("config") ?? env.M365_CONFIG;
  const configPath = resolve(expandHome(configFlag ?? defaultConfigPath(env), env));
  const file = readConfigFile(configPath, configFlag !== undefined);
  const wanted = flag("profile") ?? env.M365_PROFILE;
  const profileName = wanted ?? file?.defaultProfile ?? (file?.profiles?.default ? "default" : undefined);
  let profile: Partial<Record<string, string | number>> = {};
  if (profileName !== undefined) {
    const found = file?.profiles?.[profileName];
    if (!found) {
      const known = Object.keys(file?.profiles ?? {});
      throw usageError(
        `no profile "${profileName}" in ${file ? configPath : `${configPath} (the file does not exist)`}`,
        known.length
          ? `Use one of: ${known.join(", ")}.`
          : `Create ${configPath} with { "profiles": { "${profileName}": { "tenantId": "…", "clientId": "…", "username": "…" } } }.`,
      );
    }
    profile = found;
  }
  const configDir = dirname(configPath);
  const profilePath = (value: string) => resolve(configDir, expandHome(value, env));

  const origins: Partial<Record<SettingName | "password", Origin>> = {};
  const pick = (name: SettingName): string | undefined => {
    const spec = SETTINGS[name];
    const fromFlag = flag(spec.flag);
    if (fromFlag !== undefined) {
      origins[name] = "flag";
      return fromFlag;
    }
    const e = fromEnv(spec.env);
    if (e) {
      origins[name] = e[1];
      return e[0];
    }
    const p = profile[spec.profile];
    if (p !== undefined && p !== "") {
      origins[name] = "profile";
      return name === "caFile" || name === "tokenCacheFile" ? profilePath(String(p)) : String(p);
    }
    return undefined;
  };

  // NODE_EXTRA_CA_CERTS is read by Node only at start; a .env file sets it too late, so we read it ourselves.
  const caFile = (): string | undefined => {
    const picked = pick("caFile");
    if (picked !== undefined || !env.NODE_EXTRA_CA_CERTS) return picked;
    origins.caFile = processEnv.NODE_EXTRA_CA_CERTS ? "environment" : ".env";
    return env.NODE_EXTRA_CA_CERTS;
  };
  const settings = resolveM365Settings({
    lookup: (name) => (name === "caFile" ? caFile() : pick(name)),
    readTextFile: (path) => readFileSync(path, "utf8"),
    describe: (name) => `--${SETTINGS[name].flag} / ${SETTINGS[name].env}`,
    source: "cli",
  });

  // Beside the config file unless set; a profile's relative path is relative to the config file (pick).
  const tokenCacheFile = resolve(
    expandHome(settings.tokenCacheFile ?? join(dirname(configPath), "token-cache.json"), env),
  );

  const password = passwordSource(flags, processEnv, dotenv, profile, profilePath, configPath, out);
  if (password) origins.password = password.origin;

  return {
    ...settings,
    auth: settings.auth ?? "ropc",
    tokenCacheFile,
    ...(profileName !== undefined ? { profile: profileName } : {}),
    ...(file ? { configPath } : {}),
    ...(existsSync(envFile) ? { envFile } : {}),
    origins,
    env,
    password,
  };
}

const readSecretFile = (path: string, setting: string): string =>
  readPasswordFile(path, setting, { readTextFile: (p) => readFileSync(p, "utf8"), source: "cli" });

function passwordSource(
  flags: Flags,
  processEnv: NodeJS.ProcessEnv,
  dotenv: Record<string, string>,
  profile: Partial<Record<string, string | number>>,
  profilePath: (p: string) => string,
  configPath: string,
  out: Output,
): PasswordSource | undefined {
  const literal = (value: string, origin: Origin, description: string): PasswordSource => {
    registerSecret(value);
    return { origin, description, read: () => value };
  };
  if (typeof flags.password === "string") {
    out.warn(
      "a password on the command line can be read by other users of this machine (ps) and stays in your shell history; use --password-file, M365_PASSWORD_FILE, a profile's passwordFile, or the prompt.",
    );
    return literal(flags.password, "flag", "--password");
  }
  if (typeof flags["password-file"] === "string") {
    const path = resolve(flags["password-file"]);
    return {
      origin: "flag",
      description: `--password-file ${path}`,
      read: () => readSecretFile(path, "--password-file"),
    };
  }
  for (const [vars, origin] of [
    [processEnv, "environment"],
    [dotenv, ".env"],
  ] as const) {
    const found = m365PasswordSource(vars, {
      readTextFile: (path) => readFileSync(path, "utf8"),
      resolvePath: (path) => resolve(path),
      source: "cli",
    });
    if (found) return { origin, description: `${found.description} (${origin})`, read: found.read };
  }
  if (typeof profile.password === "string") {
    try {
      if ((statSync(configPath).mode & 0o077) !== 0) {
        out.warn(
          `${configPath} holds a password and other users may read it: chmod 600 it, or use "passwordFile".`,
        );
      }
    } catch {
      // The file was just read; a failed stat changes nothing.
    }
    return literal(profile.password, "profile", `the profile's password (${configPath})`);
  }
  if (typeof profile.passwordFile === "string") {
    const path = profilePath(profile.passwordFile);
    return {
      origin: "profile",
      description: `passwordFile ${path}`,
      read: () => readSecretFile(path, "the profile's passwordFile"),
    };
  }
  return undefined;
}

/** Who signs in: tenant, client and user (what a device-code sign-in needs; no password). */
export type Identity = Omit<Credentials, "password">;

/** Tenant, client and user, or a CONFIG_INVALID error naming what to set. */
export function requireIdentity(config: ResolvedConfig): Identity {
  const missing = (["tenantId", "clientId", "username"] as const).filter((k) => !config[k]);
  if (missing.length > 0) {
    const names = missing.map((k) => `--${SETTINGS[k].flag} / ${SETTINGS[k].env}`).join(", ");
    throw usageError(
      `missing ${missing.map((k) => SETTINGS[k].profile).join(", ")}`,
      `Set ${names} (or a profile in ${config.configPath ?? defaultConfigPath(config.env)}). The tenant id and client id are on App registration → Overview; against the emulator, run \`m365-mail emulator\` and use what it prints.`,
    );
  }
  return { tenantId: config.tenantId!, clientId: config.clientId!, username: config.username! };
}

/**
 * Tenant, client, user and password, or a CONFIG_INVALID error naming what to set. Without a
 * configured password it asks on the terminal (hidden); without a terminal it refuses.
 */
export async function requireCredentials(config: ResolvedConfig, out: Output): Promise<Credentials> {
  const identity = requireIdentity(config);
  let password: string | undefined;
  if (config.password) password = config.password.read();
  else if (process.stdin.isTTY && out.interactive) {
    password = await promptHidden(`Password for ${config.username}: `);
    registerSecret(password);
  }
  if (!password) {
    throw usageError(
      `no password for ${config.username}`,
      "Set M365_PASSWORD_FILE (a file holding only the password) or M365_PASSWORD, use --password-file or a profile's passwordFile, or run on a terminal to be asked.",
    );
  }
  return { ...identity, password };
}
