import { CLOUDS, M365MailError } from "@m365-mail/core";
import type { BridgeProtocol, FrontDoorLimits, ListenerSecurity } from "./front-door.js";
import { isLoopbackHost, parseCidr } from "./network.js";

/**
 * The bridge's configuration as written in the config file (JSON). Every field is documented in
 * docs/bridge.md; `validateBridgeConfig` turns it into a `BridgeConfig` with every default filled in and
 * refuses anything wrong with CONFIG_INVALID naming the key, e.g. `accounts[2].credentials.mode`.
 */
export interface BridgeConfigInput {
  m365?: M365ConnectionInput;
  listeners?: ListenerInput[];
  accounts?: AccountInput[];
  tokenCache?: TokenCacheInput;
  spool?: SpoolInput;
  lockout?: Partial<LockoutSettings>;
  /** POSTed a JSON event for every sign-in problem that needs a person. */
  webhookUrl?: string;
  /** Prometheus `/metrics` and `/status`; loopback only unless a host is given. */
  metrics?: { host?: string; port: number };
  logLevel?: "debug" | "info" | "warn" | "error";
  /** `"json"`: every log line on stderr is one JSON object (a log collector reads fields). @default "text" */
  logFormat?: "text" | "json";
  /** Where a generated listener certificate is kept. @default "./.m365-bridge" */
  dataDir?: string;
}

export interface M365ConnectionInput {
  tenantId?: string;
  clientId?: string;
  cloud?: "global" | "usgovhigh" | "usdod" | "china";
  authorityHost?: string;
  graphOrigin?: string;
  /** `maxMessagesPerMinute`: the SMTP delivery's own limit. @default 30 (Exchange's); 0 = off, for tests and benches */
  smtp?: { host?: string; port?: number; maxMessagesPerMinute?: number };
  imap?: { host?: string; port?: number };
  pop3?: { host?: string; port?: number };
  /** PEM file of an extra CA to trust upstream (the emulator's). */
  caFile?: string;
  engine?: "msal" | "http";
}

export interface ListenerInput {
  protocol: BridgeProtocol;
  host?: string;
  port: number;
  security?: ListenerSecurity;
  tls?: { certFile?: string; keyFile?: string };
  allowedNetworks?: string[];
  limits?: Partial<ListenerLimits>;
  /** SMTP only: devices on these networks may send without AUTH, as one account with a fixed sender. */
  noAuth?: { networks: string[]; account: string; from: string };
}

export type AccountInput = {
  name?: string;
  credentials: PassthroughCredentials | MappedCredentials;
  /** The mailbox to act on when it is not the signed-in user's own: a shared mailbox address. */
  mailbox?: string;
  delivery?: "graph" | "smtp" | "auto";
  answer?: "sync" | "spool";
  sendAs?: string[];
  /**
   * `"drop"`: a mail client's IMAP upload to Sent Items of a message it just sent through the bridge is
   * left out, since Microsoft 365 files its own copy (no duplicates). @default "keep"
   */
  sentCopies?: "keep" | "drop";
};

export interface PassthroughCredentials {
  mode: "passthrough";
  /** The one Microsoft 365 user this account is; or `domain` for every user of a domain. */
  username?: string;
  /** Catch-all: any `name@domain` logs in with its own Microsoft 365 password. */
  domain?: string;
}

export interface MappedCredentials {
  mode: "mapped";
  /** The name the device logs in with. */
  login: string;
  /** `m365-mail bridge hash-secret` output: the device's secret, only as a slow hash. */
  secretHash: string;
  /** The Microsoft 365 user the device acts as. */
  username: string;
  /** Where the bridge reads that user's password (exactly one of these three). */
  passwordFile?: string;
  passwordEnv?: string;
  /**
   * No password at all: a person signs in once with a device code (`m365-mail bridge login`), MFA
   * included, and the bridge keeps the sign-in alive with refresh grants from its token cache.
   */
  signIn?: "device-code";
}

export type TokenCacheInput =
  | { type: "memory" }
  | { type: "file"; path: string; keyFile?: string }
  | { type: "redis"; url: string; keyFile?: string };

export type SpoolInput = ({ type: "sqlite"; path: string } | { type: "redis"; url: string }) & SpoolRetry;

/** How long the spool keeps trying, as a mail server's queue does. */
export interface SpoolRetry {
  /** A message that did not reach Microsoft 365 is retried for at least this long. @default 120 (5 days) */
  readonly maxQueueHours?: number;
  /** The first retry's wait; it doubles up to 5 minutes. @default 2000 */
  readonly firstRetryMs?: number;
  /**
   * After an attempt that may have reached Microsoft 365 (a crash, a lost answer), how long to wait
   * before looking for its copy in Sent Items; not found then means "send again". Longer is safer
   * against slow filing (a resend of a message Exchange did take arrives twice). @default 30
   */
  readonly sentItemsGraceSeconds?: number;
  /**
   * When Microsoft 365 refuses a message because the mailbox passed its daily sending limit (10,000
   * recipients in a rolling 24 hours), how long the message waits before it is tried again (it is held,
   * not failed). @default 900 (15 minutes)
   */
  readonly dailyLimitRetrySeconds?: number;
}

export interface ListenerLimits extends FrontDoorLimits {
  /** SMTP: largest message accepted (advertised as SIZE). */
  readonly maxMessageBytes: number;
  /** SMTP: recipients per message (Exchange: 500). */
  readonly maxRecipients: number;
}

export interface LockoutSettings {
  /** Failed password grants per account in `windowSeconds`; more are refused without asking Entra. */
  readonly maxFailedGrants: number;
  readonly windowSeconds: number;
  /** A client IP's failures before each answer is delayed. */
  readonly ipSlowAfter: number;
  /** Delay per failure beyond `ipSlowAfter`, capped at 5 s. */
  readonly ipDelayMs: number;
  /** A client IP's failures before it is refused outright for `windowSeconds`. */
  readonly ipBlockAfter: number;
}

export interface M365Connection {
  readonly tenantId: string;
  readonly clientId: string;
  readonly cloud: "global" | "usgovhigh" | "usdod" | "china";
  readonly authorityHost?: string;
  readonly graphOrigin?: string;
  readonly smtp: { host: string; port: number; maxMessagesPerMinute?: number };
  readonly imap: { host: string; port: number };
  readonly pop3: { host: string; port: number };
  readonly caFile?: string;
  readonly engine: "msal" | "http";
}

export interface ListenerConfig {
  readonly protocol: BridgeProtocol;
  readonly host: string;
  readonly port: number;
  readonly security: ListenerSecurity;
  readonly tls?: { certFile?: string; keyFile?: string };
  readonly allowedNetworks?: readonly string[];
  readonly limits: ListenerLimits;
  readonly noAuth?: { networks: readonly string[]; account: string; from: string };
}

export interface AccountConfig {
  readonly name: string;
  readonly credentials: PassthroughCredentials | MappedCredentials;
  readonly mailbox?: string;
  readonly delivery: "graph" | "smtp" | "auto";
  readonly answer: "sync" | "spool";
  readonly sendAs: readonly string[];
  readonly sentCopies: "keep" | "drop";
}

export interface BridgeConfig {
  readonly m365: M365Connection;
  readonly listeners: readonly ListenerConfig[];
  readonly accounts: readonly AccountConfig[];
  readonly tokenCache: TokenCacheInput;
  readonly spool?: SpoolInput;
  readonly lockout: LockoutSettings;
  readonly webhookUrl?: string;
  readonly metrics?: { host: string; port: number };
  readonly logLevel: "debug" | "info" | "warn" | "error";
  readonly logFormat: "text" | "json";
  readonly dataDir: string;
}

export const DEFAULT_LIMITS: ListenerLimits = {
  maxConnections: 100,
  maxConnectionsPerIp: 10,
  idleTimeoutMs: 300_000,
  loginTimeoutMs: 60_000,
  maxLineBytes: 8_192,
  maxLiteralBytes: 8_192,
  // Exchange Online's default send limit is 35 MB of MIME; Graph's upload path carries up to 150 MB.
  maxMessageBytes: 35 * 1024 * 1024,
  maxRecipients: 500,
};

export const DEFAULT_LOCKOUT: LockoutSettings = {
  maxFailedGrants: 3,
  windowSeconds: 900,
  ipSlowAfter: 5,
  ipDelayMs: 500,
  ipBlockAfter: 20,
};

const DEFAULT_PORTS: Record<BridgeProtocol, Record<ListenerSecurity, number>> = {
  smtp: { plain: 2525, starttls: 2587, tls: 2465 },
  imap: { plain: 2143, starttls: 2143, tls: 2993 },
  pop3: { plain: 2110, starttls: 2110, tls: 2995 },
};

/** Collects every problem, so one run of `--check` shows them all. */
class Problems {
  readonly list: string[] = [];
  add(key: string, message: string): void {
    this.list.push(`${key}: ${message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function str(p: Problems, key: string, v: unknown, required = false): string | undefined {
  if (v === undefined) {
    if (required) p.add(key, "is required");
    return undefined;
  }
  if (typeof v !== "string" || v.trim() === "") {
    p.add(key, "must be a non-empty string");
    return undefined;
  }
  return v;
}

function int(p: Problems, key: string, v: unknown, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    p.add(key, `must be a whole number from ${min} to ${max}`);
    return undefined;
  }
  return v;
}

function oneOf<T extends string>(p: Problems, key: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !allowed.includes(v as T)) {
    p.add(key, `must be ${allowed.map((a) => `"${a}"`).join(" or ")}`);
    return undefined;
  }
  return v as T;
}

function unknownKeys(p: Problems, key: string, v: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(v)) {
    if (!known.includes(k))
      p.add(key ? `${key}.${k}` : k, `is not a known setting (known: ${known.join(", ")})`);
  }
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function email(p: Problems, key: string, v: unknown, required = false): string | undefined {
  const s = str(p, key, v, required);
  if (s !== undefined && !EMAIL.test(s)) {
    p.add(key, "must be an e-mail address (name@domain)");
    return undefined;
  }
  return s?.toLowerCase();
}

function networks(p: Problems, key: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    p.add(key, 'must be a list of networks, e.g. ["192.168.1.0/24"]');
    return undefined;
  }
  const out: string[] = [];
  v.forEach((n, i) => {
    if (typeof n !== "string" || !parseCidr(n))
      p.add(`${key}[${i}]`, "must be an IP address or CIDR network");
    else out.push(n);
  });
  return out;
}

/**
 * Checks a parsed config file and fills in defaults. `env` supplies the Microsoft 365 connection settings
 * the file leaves out (`M365_TENANT_ID`, `M365_CLIENT_ID`, `M365_AUTHORITY_HOST`, `M365_GRAPH_ORIGIN`,
 * `M365_SMTP_HOST/PORT`, `M365_IMAP_HOST/PORT`, `M365_POP3_HOST/PORT`, `M365_CA_FILE` or
 * `NODE_EXTRA_CA_CERTS`), so `m365-mail emulator --write-env` output plugs straight in.
 */
export function validateBridgeConfig(input: unknown, env: NodeJS.ProcessEnv = process.env): BridgeConfig {
  const p = new Problems();
  if (!isObject(input)) {
    throw configError(["(top level): must be a JSON object"]);
  }
  unknownKeys(p, "", input, [
    "$schema",
    "m365",
    "listeners",
    "accounts",
    "tokenCache",
    "spool",
    "lockout",
    "webhookUrl",
    "metrics",
    "logLevel",
    "logFormat",
    "dataDir",
  ]);
  const m365 = validateM365(p, input.m365, env);
  const accounts = validateAccounts(p, input.accounts);
  const listeners = validateListeners(p, input.listeners, accounts);
  const tokenCache = validateTokenCache(p, input.tokenCache);
  const spool = validateSpool(p, input.spool);
  const lockout = validateLockout(p, input.lockout);
  const metrics = validateMetrics(p, input.metrics);
  const webhookUrl = str(p, "webhookUrl", input.webhookUrl);
  if (webhookUrl && !/^https?:\/\//.test(webhookUrl))
    p.add("webhookUrl", "must be an http:// or https:// URL");
  const logLevel = oneOf(p, "logLevel", input.logLevel, ["debug", "info", "warn", "error"]) ?? "info";
  const logFormat = oneOf(p, "logFormat", input.logFormat, ["text", "json"]) ?? "text";
  const dataDir = str(p, "dataDir", input.dataDir) ?? "./.m365-bridge";
  if (accounts.some((a) => a.answer === "spool") && !spool) {
    const i = accounts.findIndex((a) => a.answer === "spool");
    p.add(`accounts[${i}].answer`, '"spool" needs a spool setting ({ "type": "sqlite", "path": "..." })');
  }
  const deviceCode = accounts.findIndex(
    (a) => a.credentials.mode === "mapped" && a.credentials.signIn === "device-code",
  );
  if (deviceCode >= 0 && tokenCache.type === "memory")
    p.add(
      `accounts[${deviceCode}].credentials.signIn`,
      '"device-code" needs a tokenCache of type "file" or "redis": the sign-in `m365-mail bridge login` stores must outlive the process',
    );
  if (p.list.length > 0) throw configError(p.list);
  return {
    m365,
    listeners,
    accounts,
    tokenCache,
    ...(spool ? { spool } : {}),
    lockout,
    ...(webhookUrl ? { webhookUrl } : {}),
    ...(metrics ? { metrics } : {}),
    logLevel,
    logFormat,
    dataDir,
  };
}

function validateMetrics(p: Problems, input: unknown): BridgeConfig["metrics"] {
  if (input === undefined) return undefined;
  if (!isObject(input)) {
    p.add("metrics", "must be an object { host, port }");
    return undefined;
  }
  unknownKeys(p, "metrics", input, ["host", "port"]);
  const port = int(p, "metrics.port", input.port, 0, 65535);
  if (port === undefined && input.port === undefined) p.add("metrics.port", "is required");
  return { host: str(p, "metrics.host", input.host) ?? "127.0.0.1", port: port ?? 0 };
}

/**
 * Only the `metrics` listener of a config (what `m365-mail bridge status --config` asks): the rest of
 * the file, and the `M365_*` variables it may rely on, are the running bridge's business.
 */
export function metricsOfBridgeConfig(input: unknown): BridgeConfig["metrics"] {
  const p = new Problems();
  const metrics = isObject(input) ? validateMetrics(p, input.metrics) : undefined;
  if (!isObject(input)) p.add("(top level)", "must be a JSON object");
  if (p.list.length > 0) throw configError(p.list);
  return metrics;
}

function configError(problems: readonly string[]): M365MailError {
  return new M365MailError(
    "CONFIG_INVALID",
    `the bridge config is invalid: ${problems.slice(0, 10).join("; ")}${problems.length > 10 ? ` (and ${problems.length - 10} more)` : ""}`,
    { source: "bridge", hint: "Fix the named keys; docs/bridge.md lists every setting with its default." },
  );
}

function validateM365(p: Problems, v: unknown, env: NodeJS.ProcessEnv): M365Connection {
  const m = isObject(v) ? v : {};
  if (v !== undefined && !isObject(v)) p.add("m365", "must be an object");
  unknownKeys(p, "m365", m, [
    "tenantId",
    "clientId",
    "cloud",
    "authorityHost",
    "graphOrigin",
    "smtp",
    "imap",
    "pop3",
    "caFile",
    "engine",
  ]);
  const tenantId = str(p, "m365.tenantId", m.tenantId ?? env.M365_TENANT_ID);
  if (!tenantId) p.add("m365.tenantId", "is required (or set M365_TENANT_ID)");
  else if (/^(common|consumers)$/i.test(tenantId))
    p.add("m365.tenantId", "cannot be common or consumers with the password grant (AADSTS9001023)");
  const clientId = str(p, "m365.clientId", m.clientId ?? env.M365_CLIENT_ID);
  if (!clientId) p.add("m365.clientId", "is required (or set M365_CLIENT_ID)");
  const cloud =
    oneOf(p, "m365.cloud", m.cloud ?? env.M365_CLOUD, ["global", "usgovhigh", "usdod", "china"]) ?? "global";
  const authorityHost = str(p, "m365.authorityHost", m.authorityHost ?? env.M365_AUTHORITY_HOST);
  if (authorityHost && !authorityHost.startsWith("https://"))
    p.add("m365.authorityHost", "must be an https:// URL");
  const graphOrigin = str(p, "m365.graphOrigin", m.graphOrigin ?? env.M365_GRAPH_ORIGIN);
  const endpoint = (name: "smtp" | "imap" | "pop3", defaults: { host: string; port: number }) => {
    const e = m[name];
    if (e !== undefined && !isObject(e)) p.add(`m365.${name}`, "must be an object { host, port }");
    const o = isObject(e) ? e : {};
    unknownKeys(
      p,
      `m365.${name}`,
      o,
      name === "smtp" ? ["host", "port", "maxMessagesPerMinute"] : ["host", "port"],
    );
    const upper = name.toUpperCase();
    const envPort = env[`M365_${upper}_PORT`];
    return {
      host: str(p, `m365.${name}.host`, o.host ?? env[`M365_${upper}_HOST`]) ?? defaults.host,
      port:
        int(p, `m365.${name}.port`, o.port ?? (envPort ? Number(envPort) : undefined), 1, 65535) ??
        defaults.port,
    };
  };
  const preset = CLOUDS[cloud];
  const smtpRate = int(
    p,
    "m365.smtp.maxMessagesPerMinute",
    isObject(m.smtp) ? m.smtp.maxMessagesPerMinute : undefined,
    0,
    100_000,
  );
  const caFile =
    str(p, "m365.caFile", m.caFile ?? env.M365_CA_FILE) ?? (env.NODE_EXTRA_CA_CERTS || undefined);
  const engine = oneOf(p, "m365.engine", m.engine ?? env.M365_ENGINE, ["msal", "http"]) ?? "msal";
  return {
    tenantId: tenantId ?? "",
    clientId: clientId ?? "",
    cloud,
    ...(authorityHost ? { authorityHost: authorityHost.replace(/\/+$/, "") } : {}),
    ...(graphOrigin ? { graphOrigin: graphOrigin.replace(/\/+$/, "") } : {}),
    smtp: {
      ...endpoint("smtp", preset.smtp),
      ...(smtpRate === undefined ? {} : { maxMessagesPerMinute: smtpRate }),
    },
    imap: endpoint("imap", preset.imap),
    pop3: endpoint("pop3", preset.pop3),
    ...(caFile ? { caFile } : {}),
    engine,
  };
}

function validateAccounts(p: Problems, v: unknown): AccountConfig[] {
  if (v === undefined || (Array.isArray(v) && v.length === 0)) {
    p.add("accounts", "needs at least one account");
    return [];
  }
  if (!Array.isArray(v)) {
    p.add("accounts", "must be a list");
    return [];
  }
  const out: AccountConfig[] = [];
  const names = new Set<string>();
  const logins = new Set<string>();
  v.forEach((a, i) => {
    const key = `accounts[${i}]`;
    if (!isObject(a)) {
      p.add(key, "must be an object");
      return;
    }
    unknownKeys(p, key, a, ["name", "credentials", "mailbox", "delivery", "answer", "sendAs", "sentCopies"]);
    const c = a.credentials;
    if (!isObject(c)) {
      p.add(`${key}.credentials`, "is required: { mode, ... }");
      return;
    }
    const mode = oneOf(p, `${key}.credentials.mode`, c.mode ?? "", ["passthrough", "mapped"]);
    let credentials: PassthroughCredentials | MappedCredentials | undefined;
    let defaultName = "";
    if (mode === "passthrough") {
      unknownKeys(p, `${key}.credentials`, c, ["mode", "username", "domain"]);
      const username = email(p, `${key}.credentials.username`, c.username);
      const domain = str(p, `${key}.credentials.domain`, c.domain)?.toLowerCase().replace(/^@/, "");
      if (!username === !domain)
        p.add(`${key}.credentials`, 'a passthrough account needs exactly one of "username" and "domain"');
      credentials = {
        mode,
        ...(username ? { username } : {}),
        ...(domain ? { domain } : {}),
      };
      defaultName = username ?? `@${domain}`;
      const loginKey = username ?? `@${domain}`;
      if (logins.has(loginKey)) p.add(`${key}.credentials`, `${loginKey} is already used by another account`);
      logins.add(loginKey);
    } else if (mode === "mapped") {
      unknownKeys(p, `${key}.credentials`, c, [
        "mode",
        "login",
        "secretHash",
        "username",
        "passwordFile",
        "passwordEnv",
        "signIn",
      ]);
      const login = str(p, `${key}.credentials.login`, c.login, true)?.toLowerCase();
      const secretHash = str(p, `${key}.credentials.secretHash`, c.secretHash, true);
      if (secretHash && !secretHash.startsWith("scrypt$"))
        p.add(
          `${key}.credentials.secretHash`,
          "must be a hash made by `m365-mail bridge hash-secret` (starts with scrypt$), never the secret itself",
        );
      const username = email(p, `${key}.credentials.username`, c.username, true);
      const passwordFile = str(p, `${key}.credentials.passwordFile`, c.passwordFile);
      const passwordEnv = str(p, `${key}.credentials.passwordEnv`, c.passwordEnv);
      const signIn = oneOf(p, `${key}.credentials.signIn`, c.signIn, ["device-code"]);
      if ([passwordFile, passwordEnv, signIn].filter(Boolean).length !== 1)
        p.add(
          `${key}.credentials`,
          'a mapped account needs exactly one of "passwordFile", "passwordEnv" and "signIn": "device-code"',
        );
      if (login) {
        if (logins.has(login))
          p.add(`${key}.credentials.login`, `${login} is already used by another account`);
        logins.add(login);
      }
      credentials = {
        mode,
        login: login ?? "",
        secretHash: secretHash ?? "",
        username: username ?? "",
        ...(passwordFile ? { passwordFile } : {}),
        ...(passwordEnv ? { passwordEnv } : {}),
        ...(signIn ? { signIn } : {}),
      };
      defaultName = login ?? "";
    }
    const name = str(p, `${key}.name`, a.name) ?? defaultName;
    if (names.has(name)) p.add(`${key}.name`, `"${name}" is already the name of another account`);
    names.add(name);
    const mailbox = email(p, `${key}.mailbox`, a.mailbox);
    if (mailbox && credentials?.mode === "passthrough" && (credentials as PassthroughCredentials).domain)
      p.add(`${key}.mailbox`, "cannot be set on a catch-all (domain) account");
    const delivery = oneOf(p, `${key}.delivery`, a.delivery, ["graph", "smtp", "auto"]) ?? "graph";
    const answer = oneOf(p, `${key}.answer`, a.answer, ["sync", "spool"]) ?? "sync";
    if (answer === "spool" && credentials?.mode === "passthrough")
      p.add(
        `${key}.answer`,
        '"spool" needs a mapped account: after a restart the bridge must sign in without the device (use mode "mapped")',
      );
    let sendAs: string[] = [];
    if (a.sendAs !== undefined) {
      if (!Array.isArray(a.sendAs)) p.add(`${key}.sendAs`, "must be a list of e-mail addresses");
      else sendAs = a.sendAs.map((s, j) => email(p, `${key}.sendAs[${j}]`, s) ?? "").filter(Boolean);
    }
    const sentCopies = oneOf(p, `${key}.sentCopies`, a.sentCopies, ["keep", "drop"]) ?? "keep";
    // A spooled message is not sent yet when the client uploads its copy, and may never be.
    if (sentCopies === "drop" && answer === "spool")
      p.add(
        `${key}.sentCopies`,
        '"drop" needs answer "sync": a spooled message may not reach Microsoft 365, and the client\'s copy must then stay',
      );
    if (credentials)
      out.push({ name, credentials, ...(mailbox ? { mailbox } : {}), delivery, answer, sendAs, sentCopies });
  });
  return out;
}

function validateListeners(p: Problems, v: unknown, accounts: readonly AccountConfig[]): ListenerConfig[] {
  if (v === undefined) {
    // The smallest useful bridge: SMTP on loopback.
    return [{ protocol: "smtp", host: "127.0.0.1", port: 2525, security: "plain", limits: DEFAULT_LIMITS }];
  }
  if (!Array.isArray(v)) {
    p.add("listeners", "must be a list");
    return [];
  }
  const out: ListenerConfig[] = [];
  v.forEach((l, i) => {
    const key = `listeners[${i}]`;
    if (!isObject(l)) {
      p.add(key, "must be an object");
      return;
    }
    unknownKeys(p, key, l, [
      "protocol",
      "host",
      "port",
      "security",
      "tls",
      "allowedNetworks",
      "limits",
      "noAuth",
    ]);
    const protocol = oneOf(p, `${key}.protocol`, l.protocol ?? "", ["smtp", "imap", "pop3"]);
    const security = oneOf(p, `${key}.security`, l.security, ["plain", "starttls", "tls"]) ?? "plain";
    const host = str(p, `${key}.host`, l.host) ?? "127.0.0.1";
    const port =
      int(p, `${key}.port`, l.port, 0, 65535) ?? (protocol ? DEFAULT_PORTS[protocol][security] : 0);
    const allowedNetworks = networks(p, `${key}.allowedNetworks`, l.allowedNetworks);
    if (security === "plain" && !isLoopbackHost(host) && !allowedNetworks) {
      p.add(
        `${key}.allowedNetworks`,
        `is required for a "plain" listener on ${host} (not loopback): list the client networks that may send passwords in clear text, or use "starttls"/"tls"`,
      );
    }
    let tls: ListenerConfig["tls"];
    if (l.tls !== undefined) {
      if (!isObject(l.tls)) p.add(`${key}.tls`, "must be an object { certFile, keyFile }");
      else {
        unknownKeys(p, `${key}.tls`, l.tls, ["certFile", "keyFile"]);
        const certFile = str(p, `${key}.tls.certFile`, l.tls.certFile);
        const keyFile = str(p, `${key}.tls.keyFile`, l.tls.keyFile);
        if (!certFile !== !keyFile)
          p.add(`${key}.tls`, "needs both certFile and keyFile (or neither, to generate one)");
        tls = { ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}) };
      }
    }
    const limits = { ...DEFAULT_LIMITS };
    if (l.limits !== undefined) {
      if (!isObject(l.limits)) p.add(`${key}.limits`, "must be an object");
      else {
        unknownKeys(p, `${key}.limits`, l.limits, Object.keys(DEFAULT_LIMITS));
        for (const name of Object.keys(DEFAULT_LIMITS) as (keyof ListenerLimits)[]) {
          const value = int(p, `${key}.limits.${name}`, l.limits[name], 1, 2 ** 31);
          if (value !== undefined) (limits as Record<string, number>)[name] = value;
        }
      }
    }
    let noAuth: ListenerConfig["noAuth"];
    if (l.noAuth !== undefined) {
      const nk = `${key}.noAuth`;
      if (protocol !== "smtp") p.add(nk, "is only for SMTP listeners");
      if (!isObject(l.noAuth)) p.add(nk, "must be an object { networks, account, from }");
      else {
        unknownKeys(p, nk, l.noAuth, ["networks", "account", "from"]);
        const nets = networks(p, `${nk}.networks`, l.noAuth.networks);
        if (!nets || nets.length === 0) p.add(`${nk}.networks`, "must list at least one network");
        // Any spelling of a zero-bit prefix ("/0", "/00", "::/000") matches every address.
        else if (nets.some((n) => parseCidr(n)?.bits === 0))
          p.add(`${nk}.networks`, "must not contain a /0 network: that would make the bridge an open relay");
        const account = str(p, `${nk}.account`, l.noAuth.account, true);
        if (account && !accounts.some((a) => a.name === account))
          p.add(`${nk}.account`, `names no account (accounts: ${accounts.map((a) => a.name).join(", ")})`);
        const from = email(p, `${nk}.from`, l.noAuth.from, true);
        if (nets && account && from) noAuth = { networks: nets, account, from };
      }
    }
    if (protocol)
      out.push({
        protocol,
        host,
        port,
        security,
        ...(tls ? { tls } : {}),
        ...(allowedNetworks ? { allowedNetworks } : {}),
        limits,
        ...(noAuth ? { noAuth } : {}),
      });
  });
  return out;
}

function validateTokenCache(p: Problems, v: unknown): TokenCacheInput {
  if (v === undefined) return { type: "memory" };
  if (!isObject(v)) {
    p.add("tokenCache", "must be an object { type, ... }");
    return { type: "memory" };
  }
  const type = oneOf(p, "tokenCache.type", v.type ?? "", ["memory", "file", "redis"]);
  if (type === "file") {
    unknownKeys(p, "tokenCache", v, ["type", "path", "keyFile"]);
    const keyFile = str(p, "tokenCache.keyFile", v.keyFile);
    return { type, path: str(p, "tokenCache.path", v.path, true) ?? "", ...(keyFile ? { keyFile } : {}) };
  }
  if (type === "redis") {
    unknownKeys(p, "tokenCache", v, ["type", "url", "keyFile"]);
    const keyFile = str(p, "tokenCache.keyFile", v.keyFile);
    return { type, url: str(p, "tokenCache.url", v.url, true) ?? "", ...(keyFile ? { keyFile } : {}) };
  }
  unknownKeys(p, "tokenCache", v, ["type"]);
  return { type: "memory" };
}

function validateSpool(p: Problems, v: unknown): SpoolInput | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) {
    p.add("spool", "must be an object { type, ... }");
    return undefined;
  }
  const type = oneOf(p, "spool.type", v.type ?? "", ["sqlite", "redis"]);
  const maxQueueHours = int(p, "spool.maxQueueHours", v.maxQueueHours, 1, 720);
  const firstRetryMs = int(p, "spool.firstRetryMs", v.firstRetryMs, 10, 300_000);
  const sentItemsGraceSeconds = int(p, "spool.sentItemsGraceSeconds", v.sentItemsGraceSeconds, 1, 3_600);
  const dailyLimitRetrySeconds = int(p, "spool.dailyLimitRetrySeconds", v.dailyLimitRetrySeconds, 1, 86_400);
  const retry: SpoolRetry = {
    ...(maxQueueHours !== undefined ? { maxQueueHours } : {}),
    ...(firstRetryMs !== undefined ? { firstRetryMs } : {}),
    ...(sentItemsGraceSeconds !== undefined ? { sentItemsGraceSeconds } : {}),
    ...(dailyLimitRetrySeconds !== undefined ? { dailyLimitRetrySeconds } : {}),
  };
  const retryKeys = ["maxQueueHours", "firstRetryMs", "sentItemsGraceSeconds", "dailyLimitRetrySeconds"];
  if (type === "sqlite") {
    unknownKeys(p, "spool", v, ["type", "path", ...retryKeys]);
    return { type, path: str(p, "spool.path", v.path, true) ?? "", ...retry };
  }
  if (type === "redis") {
    unknownKeys(p, "spool", v, ["type", "url", ...retryKeys]);
    return { type, url: str(p, "spool.url", v.url, true) ?? "", ...retry };
  }
  return undefined;
}

function validateLockout(p: Problems, v: unknown): LockoutSettings {
  if (v === undefined) return DEFAULT_LOCKOUT;
  if (!isObject(v)) {
    p.add("lockout", "must be an object");
    return DEFAULT_LOCKOUT;
  }
  unknownKeys(p, "lockout", v, Object.keys(DEFAULT_LOCKOUT));
  const out = { ...DEFAULT_LOCKOUT };
  for (const name of Object.keys(DEFAULT_LOCKOUT) as (keyof LockoutSettings)[]) {
    const value = int(p, `lockout.${name}`, v[name], name === "ipDelayMs" ? 0 : 1, 10_000_000);
    if (value !== undefined) (out as Record<string, number>)[name] = value;
  }
  if (out.maxFailedGrants > 9)
    p.add("lockout.maxFailedGrants", "must stay under Entra's smart lockout threshold (10); use 9 or less");
  return out;
}
