import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseEnv } from "node:util";
import type { RopcEngine } from "@m365-mail/auth-ropc";
import { CLOUDS, type CloudName, type CloudPreset, registerSecret, resolveCloud } from "@m365-mail/core";
import { usageError } from "./exit-codes.js";
import type { Output } from "./output.js";
import { promptHidden } from "./prompt.js";

/** A cloud preset plus the origin Graph traffic goes to (the emulator serves Graph on its own port). */
export type CliCloud = CloudPreset & { readonly graphOrigin?: string };

/** One setting: its flag, environment variable and key in a config-file profile. */
interface SettingSpec {
  flag: string;
  env: string;
  profile: string;
}

// One table drives flags, environment and profiles, so the three never drift apart.
export const SETTINGS = {
  tenantId: { flag: "tenant", env: "M365_TENANT_ID", profile: "tenantId" },
  clientId: { flag: "client-id", env: "M365_CLIENT_ID", profile: "clientId" },
  username: { flag: "username", env: "M365_USERNAME", profile: "username" },
  cloud: { flag: "cloud", env: "M365_CLOUD", profile: "cloud" },
  authorityHost: { flag: "authority-host", env: "M365_AUTHORITY_HOST", profile: "authorityHost" },
  caFile: { flag: "ca-file", env: "M365_CA_FILE", profile: "caFile" },
  graphOrigin: { flag: "graph-origin", env: "M365_GRAPH_ORIGIN", profile: "graphOrigin" },
  smtpHost: { flag: "smtp-host", env: "M365_SMTP_HOST", profile: "smtpHost" },
  smtpPort: { flag: "smtp-port", env: "M365_SMTP_PORT", profile: "smtpPort" },
  imapHost: { flag: "imap-host", env: "M365_IMAP_HOST", profile: "imapHost" },
  imapPort: { flag: "imap-port", env: "M365_IMAP_PORT", profile: "imapPort" },
  pop3Host: { flag: "pop3-host", env: "M365_POP3_HOST", profile: "pop3Host" },
  pop3Port: { flag: "pop3-port", env: "M365_POP3_PORT", profile: "pop3Port" },
  engine: { flag: "engine", env: "M365_ENGINE", profile: "engine" },
  mailbox: { flag: "mailbox", env: "M365_MAILBOX", profile: "mailbox" },
} as const satisfies Record<string, SettingSpec>;

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
  /** `--mailbox`: a shared mailbox to work on with the signed-in user's rights (default: their own). */
  readonly mailbox?: string;
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
      return name === "caFile" ? profilePath(String(p)) : String(p);
    }
    return undefined;
  };

  const cloudName = pick("cloud") ?? "global";
  if (!(cloudName in CLOUDS)) {
    throw usageError(
      `unknown cloud "${cloudName}"`,
      `Set --cloud / M365_CLOUD to one of: ${Object.keys(CLOUDS).join(", ")}.`,
    );
  }
  const base = resolveCloud(cloudName as CloudName);
  const port = (name: SettingName, fallback: number): number => {
    const value = pick(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw usageError(
        `${SETTINGS[name].flag} must be a port number, got "${value}"`,
        `Fix --${SETTINGS[name].flag} / ${SETTINGS[name].env}.`,
      );
    }
    return n;
  };
  const authorityHost = pick("authorityHost");
  if (authorityHost !== undefined && !/^https:\/\//i.test(authorityHost)) {
    throw usageError(
      `the authority host must be an https:// URL, got "${authorityHost}"`,
      "Set --authority-host / M365_AUTHORITY_HOST to e.g. https://login.microsoftonline.com (Entra ID speaks HTTPS only).",
    );
  }
  const graphOrigin = pick("graphOrigin");
  const cloud: CliCloud = {
    ...base,
    ...(authorityHost ? { authorityHost: authorityHost.replace(/\/+$/, "") } : {}),
    ...(graphOrigin ? { graphOrigin: graphOrigin.replace(/\/+$/, "") } : {}),
    smtp: { host: pick("smtpHost") ?? base.smtp.host, port: port("smtpPort", base.smtp.port) },
    imap: { host: pick("imapHost") ?? base.imap.host, port: port("imapPort", base.imap.port) },
    pop3: { host: pick("pop3Host") ?? base.pop3.host, port: port("pop3Port", base.pop3.port) },
  };

  // NODE_EXTRA_CA_CERTS is read by Node only at start; a .env file sets it too late, so we read it ourselves.
  let caFile = pick("caFile");
  if (caFile === undefined && env.NODE_EXTRA_CA_CERTS) {
    caFile = env.NODE_EXTRA_CA_CERTS;
    origins.caFile = processEnv.NODE_EXTRA_CA_CERTS ? "environment" : ".env";
  }
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (error) {
      throw usageError(
        `cannot read the CA file ${caFile}`,
        "Point --ca-file / M365_CA_FILE at a PEM certificate (the emulator prints its CA path).",
        error,
      );
    }
  }

  const engine = pick("engine");
  if (engine !== undefined && engine !== "msal" && engine !== "http") {
    throw usageError(`unknown engine "${engine}"`, "Set --engine / M365_ENGINE to msal (default) or http.");
  }

  const password = passwordSource(flags, processEnv, dotenv, profile, profilePath, configPath, out);
  if (password) origins.password = password.origin;

  return {
    tenantId: pick("tenantId"),
    clientId: pick("clientId"),
    username: pick("username"),
    cloud,
    ...(ca !== undefined ? { ca, caFile } : {}),
    ...(engine ? { engine: engine as RopcEngine } : {}),
    ...(pick("mailbox") ? { mailbox: pick("mailbox")! } : {}),
    ...(profileName !== undefined ? { profile: profileName } : {}),
    ...(file ? { configPath } : {}),
    ...(existsSync(envFile) ? { envFile } : {}),
    origins,
    env,
    password,
  };
}

function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw usageError(
      `cannot read the password file ${path}`,
      `Check ${what}: the file must exist and be readable.`,
      error,
    );
  }
  // Editors add one trailing newline; ROPC refuses passwords with leading/trailing spaces anyway.
  const password = text.replace(/\r?\n$/, "");
  registerSecret(password);
  return password;
}

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
    if (vars.M365_PASSWORD) return literal(vars.M365_PASSWORD, origin, `M365_PASSWORD (${origin})`);
    if (vars.M365_PASSWORD_FILE) {
      const path = resolve(vars.M365_PASSWORD_FILE);
      return {
        origin,
        description: `M365_PASSWORD_FILE ${path} (${origin})`,
        read: () => readSecretFile(path, "M365_PASSWORD_FILE"),
      };
    }
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

/**
 * Tenant, client, user and password, or a CONFIG_INVALID error naming what to set. Without a
 * configured password it asks on the terminal (hidden); without a terminal it refuses.
 */
export async function requireCredentials(config: ResolvedConfig, out: Output): Promise<Credentials> {
  const missing = (["tenantId", "clientId", "username"] as const).filter((k) => !config[k]);
  if (missing.length > 0) {
    const names = missing.map((k) => `--${SETTINGS[k].flag} / ${SETTINGS[k].env}`).join(", ");
    throw usageError(
      `missing ${missing.map((k) => SETTINGS[k].profile).join(", ")}`,
      `Set ${names} (or a profile in ${config.configPath ?? defaultConfigPath(config.env)}). The tenant id and client id are on App registration → Overview; against the emulator, run \`m365-mail emulator\` and use what it prints.`,
    );
  }
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
  return {
    tenantId: config.tenantId!,
    clientId: config.clientId!,
    username: config.username!,
    password,
  };
}
