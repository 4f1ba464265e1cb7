import { CLOUDS, type CloudName, type CloudPreset } from "./clouds.js";
import { M365MailError } from "./errors.js";
import { registerSecret } from "./redact.js";

/** One connection setting: its environment variable, command-line flag and config-file profile key. */
export interface M365SettingSpec {
  readonly env: string;
  readonly flag: string;
  readonly profile: string;
}

/**
 * Every `M365_*` connection setting in one table. The CLI (flags, environment, `.env`, profiles), the
 * sample server (environment) and the bridge read them through `resolveM365Settings`, so a name, a
 * default or a check never differs between them.
 */
export const M365_SETTINGS = {
  tenantId: { env: "M365_TENANT_ID", flag: "tenant", profile: "tenantId" },
  clientId: { env: "M365_CLIENT_ID", flag: "client-id", profile: "clientId" },
  username: { env: "M365_USERNAME", flag: "username", profile: "username" },
  cloud: { env: "M365_CLOUD", flag: "cloud", profile: "cloud" },
  authorityHost: { env: "M365_AUTHORITY_HOST", flag: "authority-host", profile: "authorityHost" },
  caFile: { env: "M365_CA_FILE", flag: "ca-file", profile: "caFile" },
  graphOrigin: { env: "M365_GRAPH_ORIGIN", flag: "graph-origin", profile: "graphOrigin" },
  smtpHost: { env: "M365_SMTP_HOST", flag: "smtp-host", profile: "smtpHost" },
  smtpPort: { env: "M365_SMTP_PORT", flag: "smtp-port", profile: "smtpPort" },
  imapHost: { env: "M365_IMAP_HOST", flag: "imap-host", profile: "imapHost" },
  imapPort: { env: "M365_IMAP_PORT", flag: "imap-port", profile: "imapPort" },
  pop3Host: { env: "M365_POP3_HOST", flag: "pop3-host", profile: "pop3Host" },
  pop3Port: { env: "M365_POP3_PORT", flag: "pop3-port", profile: "pop3Port" },
  engine: { env: "M365_ENGINE", flag: "engine", profile: "engine" },
  federation: { env: "M365_FEDERATION", flag: "federation", profile: "federation" },
  auth: { env: "M365_AUTH", flag: "auth", profile: "auth" },
  tokenCacheFile: { env: "M365_TOKEN_CACHE_FILE", flag: "token-cache-file", profile: "tokenCacheFile" },
} as const satisfies Record<string, M365SettingSpec>;

export type M365SettingName = keyof typeof M365_SETTINGS;

/** A cloud preset plus the origin Graph traffic goes to when it is not the cloud's (the emulator's). */
export type M365Cloud = CloudPreset & { readonly graphOrigin?: string };

/** The token engine of `@m365-mail/auth-ropc`. */
export type M365Engine = "msal" | "http";

/** How `@m365-mail/auth-ropc` signs in a user whose domain is federated to AD FS. */
export type M365Federation = "auto" | "ws-trust" | "direct";
/** How to sign in: the password grant, or the sign-in `m365-mail login --device-code` stored (no password). */
export type M365AuthMethod = "ropc" | "device-code";

export interface M365Settings {
  readonly tenantId?: string;
  readonly clientId?: string;
  readonly username?: string;
  /** The cloud preset with every host, port and origin override applied. */
  readonly cloud: M365Cloud;
  readonly caFile?: string;
  /** PEM of the extra CA to trust, read from `caFile`. */
  readonly ca?: string;
  readonly engine?: M365Engine;
  /** Federated (AD FS) users: auto (default), ws-trust or direct. */
  readonly federation?: M365Federation;
  /** Unset means "ropc". */
  readonly auth?: M365AuthMethod;
  /** The encrypted file a device-code sign-in is stored in (as given; the caller resolves the path). */
  readonly tokenCacheFile?: string;
}

export interface ResolveM365SettingsOptions {
  /**
   * The raw value of a setting after the caller's own precedence (flags over environment over files,
   * or the environment alone). `undefined` or `""` means unset.
   */
  lookup(name: M365SettingName): string | undefined;
  /** Reads a text file (the CA file). Core does no I/O itself: pass `(path) => readFileSync(path, "utf8")`. */
  readTextFile(path: string): string;
  /**
   * How hints name a setting, in the interface's own words: `--cloud / M365_CLOUD` in the CLI.
   * @default the environment variable, e.g. `M365_CLOUD`
   */
  describe?(name: M365SettingName): string;
  /** The `source` of the errors. @default "config" */
  source?: string;
}

/**
 * Reads and checks the `M365_*` connection settings: cloud, authority host, Graph origin, protocol hosts
 * and ports, CA file and engine. Anything malformed is a CONFIG_INVALID whose hint names the setting
 * as `describe` spells it. Tenant, client and user are passed through; whether they are required is the
 * caller's business (the CLI asks only when a command signs in).
 */
export function resolveM365Settings(options: ResolveM365SettingsOptions): M365Settings {
  const source = options.source ?? "config";
  const describe = options.describe ?? ((name: M365SettingName) => M365_SETTINGS[name].env);
  const get = (name: M365SettingName): string | undefined => {
    const value = options.lookup(name);
    return value === undefined || value === "" ? undefined : value;
  };
  const invalid = (message: string, hint: string, cause?: unknown) =>
    new M365MailError("CONFIG_INVALID", message, { source, hint, ...(cause ? { cause } : {}) });

  const cloudName = get("cloud") ?? "global";
  if (!Object.hasOwn(CLOUDS, cloudName)) {
    throw invalid(
      `unknown cloud "${cloudName}"`,
      `Set ${describe("cloud")} to one of: ${Object.keys(CLOUDS).join(", ")}.`,
    );
  }
  const base = CLOUDS[cloudName as CloudName];
  const port = (name: "smtpPort" | "imapPort" | "pop3Port", fallback: number): number => {
    const value = get(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw invalid(
        `the ${name.slice(0, -4).toUpperCase()} port must be a whole number from 1 to 65535, got "${value}"`,
        `Fix ${describe(name)}.`,
      );
    }
    return n;
  };
  const authorityHost = get("authorityHost");
  if (authorityHost !== undefined && !/^https:\/\//i.test(authorityHost)) {
    throw invalid(
      `the authority host must be an https:// URL, got "${authorityHost}"`,
      `Set ${describe("authorityHost")} to e.g. https://login.microsoftonline.com (Entra ID speaks HTTPS only).`,
    );
  }
  const graphOrigin = get("graphOrigin");
  const cloud: M365Cloud = {
    ...base,
    ...(authorityHost ? { authorityHost: authorityHost.replace(/\/+$/, "") } : {}),
    ...(graphOrigin ? { graphOrigin: graphOrigin.replace(/\/+$/, "") } : {}),
    smtp: { host: get("smtpHost") ?? base.smtp.host, port: port("smtpPort", base.smtp.port) },
    imap: { host: get("imapHost") ?? base.imap.host, port: port("imapPort", base.imap.port) },
    pop3: { host: get("pop3Host") ?? base.pop3.host, port: port("pop3Port", base.pop3.port) },
  };

  const caFile = get("caFile");
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = options.readTextFile(caFile);
    } catch (error) {
      throw invalid(
        `cannot read the CA file ${caFile}`,
        `Point ${describe("caFile")} at a PEM certificate (the emulator prints its CA path).`,
        error,
      );
    }
  }

  const engine = get("engine");
  if (engine !== undefined && engine !== "msal" && engine !== "http") {
    throw invalid(`unknown engine "${engine}"`, `Set ${describe("engine")} to msal (default) or http.`);
  }

  const federation = get("federation");
  if (federation !== undefined && !["auto", "ws-trust", "direct"].includes(federation)) {
    throw invalid(
      `unknown federation mode "${federation}"`,
      `Set ${describe("federation")} to auto (default), ws-trust or direct.`,
    );
  }
  const auth = get("auth");
  if (auth !== undefined && auth !== "ropc" && auth !== "device-code") {
    throw invalid(
      `unknown auth method "${auth}"`,
      `Set ${describe("auth")} to ropc (default: the password grant) or device-code (the sign-in stored by \`m365-mail login --device-code\`).`,
    );
  }
  const tokenCacheFile = get("tokenCacheFile");

  const tenantId = get("tenantId");
  const clientId = get("clientId");
  const username = get("username");
  return {
    ...(tenantId !== undefined ? { tenantId } : {}),
    ...(clientId !== undefined ? { clientId } : {}),
    ...(username !== undefined ? { username } : {}),
    cloud,
    ...(caFile !== undefined ? { caFile, ca: ca! } : {}),
    ...(engine ? { engine } : {}),
    ...(federation ? { federation: federation as M365Federation } : {}),
    ...(auth ? { auth } : {}),
    ...(tokenCacheFile ? { tokenCacheFile } : {}),
  };
}

/** Where a password comes from, without its value (safe to show), and how to read it when needed. */
export interface M365PasswordSource {
  /** E.g. `M365_PASSWORD_FILE /run/secrets/m365`; never the password. */
  readonly description: string;
  /** Reads the password (from the file, for a file) and registers it as a secret for redaction. */
  read(): string;
}

export interface M365PasswordOptions {
  readTextFile(path: string): string;
  /** Turns a relative file name into the path to read (the CLI resolves against the working folder). */
  resolvePath?(path: string): string;
  /** The `source` of the errors. @default "config" */
  source?: string;
}

/**
 * The password from one set of variables: `M365_PASSWORD_FILE` (a file holding only the password; one
 * trailing newline is dropped) wins over `M365_PASSWORD`, as a file keeps the password out of `ps` and
 * shell history. Undefined when neither is set.
 */
export function m365PasswordSource(
  vars: Readonly<Record<string, string | undefined>>,
  options: M365PasswordOptions,
): M365PasswordSource | undefined {
  if (vars.M365_PASSWORD_FILE) {
    const path = options.resolvePath?.(vars.M365_PASSWORD_FILE) ?? vars.M365_PASSWORD_FILE;
    return {
      description: `M365_PASSWORD_FILE ${path}`,
      read: () => readPasswordFile(path, "M365_PASSWORD_FILE", options),
    };
  }
  const value = vars.M365_PASSWORD;
  if (value) {
    registerSecret(value);
    return { description: "M365_PASSWORD", read: () => value };
  }
  return undefined;
}

/**
 * Reads a password file: the whole file, less one trailing newline (editors add one; Entra refuses
 * passwords with leading or trailing spaces anyway). `setting` names where the path came from in the hint.
 */
export function readPasswordFile(
  path: string,
  setting: string,
  options: Pick<M365PasswordOptions, "readTextFile" | "source">,
): string {
  let text: string;
  try {
    text = options.readTextFile(path);
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot read the password file ${path}`, {
      source: options.source ?? "config",
      cause: error,
      hint: `Check ${setting}: the file must exist, be readable and hold only the password.`,
    });
  }
  const password = text.replace(/\r?\n$/, "");
  registerSecret(password);
  return password;
}
