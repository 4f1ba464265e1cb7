import { readFileSync } from "node:fs";
import {
  M365_SETTINGS,
  type M365AuthMethod,
  type M365Cloud,
  M365MailError,
  m365PasswordSource,
  registerSecret,
  resolveM365Settings,
} from "@m365-mail/core";
import { parseApiKeyEntries, type StoredApiKey } from "./api-keys.js";
import { parseWebhookUrls } from "./events/webhooks.js";

export const SOURCE = "server";

export type TransportChoice = "graph" | "smtp" | "imap";
export type OutboxKind = "sqlite" | "redis";

/** A cloud preset plus the Graph origin override the emulator (or a private endpoint) needs. */
export type ServerCloud = M365Cloud;

/** The password grant (ROPC), or a sign-in stored by `m365-mail login --device-code` (no password). */
export type AuthMethod = M365AuthMethod;

export interface M365Settings {
  tenantId: string;
  clientId: string;
  username: string;
  /** M365_MAILBOX: a shared mailbox the server works on with the user's rights (default: their own). */
  mailbox?: string;
  /** M365_AUTH. @default "ropc" */
  auth?: AuthMethod;
  /** Never logged; registered as a secret when loaded. Empty with M365_AUTH=device-code. */
  password: string;
  cloud: ServerCloud;
  engine: "msal" | "http";
  /** Federated (AD FS) users: `auto` (user-realm discovery), `ws-trust` or `direct`. */
  federation: "auto" | "ws-trust" | "direct";
  /** Extra CA certificates (PEM), e.g. the emulator's. */
  ca?: string;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** Start the emulator in this process and use its demo user. */
  emulator: boolean;
  /** Absent in emulator mode until the emulator has started. */
  m365?: M365Settings;
  transports: TransportChoice[];
  /** Which transport lists and reads mail. */
  readVia: "graph" | "imap";
  /** Where new-mail events come from; "off" disables SSE and webhooks for mail. */
  watchVia: "graph" | "imap" | "off";
  watchIntervalMs: number;
  apiKeys: StoredApiKey[];
  outbox: OutboxKind;
  outboxPath: string;
  /** "FULL" (default): fsync at every commit, so a 202 survives power loss, not only a crash. */
  sqliteSynchronous: "FULL" | "NORMAL";
  redisUrl?: string;
  tokenCache: "memory" | "redis" | "file";
  /** TOKEN_CACHE=file: the encrypted file (the CLI's `login --device-code` writes one). */
  tokenCacheFile?: string;
  /** TOKEN_CACHE=file: its key, M365_CACHE_KEY (32 bytes, base64). */
  tokenCacheKey?: Buffer;
  /** Requests per minute per API key; 0 turns the limit off. */
  rateLimitPerMinute: number;
  /** Decoded bytes of all attachments of one message. */
  maxAttachmentBytes: number;
  corsOrigins: string[];
  webhookUrls: string[];
  webhookSecret?: string;
  maxAttempts: number;
  retryBaseMs: number;
  /** How long Exchange may take to file a sent message in Sent Items (checked before any resend). */
  sentItemsGraceMs: number;
  /** OUTBOX=redis: a job whose process died is taken over after at most about twice this. */
  redisLockMs: number;
  graphConcurrency: number;
  smtpConnections: number;
  smtpPerMinute: number;
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  /** READYZ_CACHE_MS: one round of /readyz's live checks answers this long. */
  readyCacheMs: number;
  /** Open SSE streams per API key (SSE_MAX_PER_KEY). */
  sseMaxPerKey: number;
  /** Open SSE streams in total (SSE_MAX_CONNECTIONS). */
  sseMaxTotal: number;
  /** Serve /metrics without an API key (for a scraper on a private network). */
  metricsPublic: boolean;
}

function invalid(message: string, hint: string): M365MailError {
  return new M365MailError("CONFIG_INVALID", message, { source: SOURCE, hint });
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw invalid(
      `${name} must be an integer ≥ ${min}, got "${raw}"`,
      `Set ${name} to a number or unset it.`,
    );
  }
  return value;
}

function list(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function oneOf<T extends string>(
  env: NodeJS.ProcessEnv,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw invalid(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`, `Fix ${name}.`);
  }
  return raw as T;
}

const readTextFile = (path: string) => readFileSync(path, "utf8");

/** The tenant settings from M365_* variables, read by core's one module for them (as the CLI and the bridge do). */
export function m365SettingsFromEnv(env: NodeJS.ProcessEnv): M365Settings {
  // A device-code sign-in is stored in the token cache: there is no password to read.
  const deviceCode = env[M365_SETTINGS.auth.env] === "device-code";
  const password = deviceCode ? "" : m365PasswordSource(env, { readTextFile, source: SOURCE })?.read();
  const missing: string[] = (["tenantId", "clientId", "username"] as const)
    .map((name) => M365_SETTINGS[name].env)
    .filter((name) => !env[name]);
  if (!deviceCode && !password) missing.push("M365_PASSWORD");
  if (missing.length > 0) {
    throw invalid(
      `missing ${missing.join(", ")}`,
      "Set the Directory (tenant) ID and Application (client) ID from App registration → Overview, the mailbox user's UPN and password (or M365_PASSWORD_FILE) — or start with --emulator.",
    );
  }
  const settings = resolveM365Settings({
    lookup: (name) => env[M365_SETTINGS[name].env],
    readTextFile,
    source: SOURCE,
  });
  return {
    tenantId: settings.tenantId!,
    clientId: settings.clientId!,
    username: settings.username!,
    auth: settings.auth ?? "ropc",
    password: password ?? "",
    cloud: settings.cloud,
    engine: settings.engine ?? "msal",
    federation: settings.federation ?? "auto",
    ...(settings.mailbox ? { mailbox: settings.mailbox } : {}),
    ...(settings.ca ? { ca: settings.ca } : {}),
  };
}

/**
 * Reads the server's settings from the environment (and `--emulator`, `--port` from argv). Every
 * variable is documented in the README; anything malformed is a CONFIG_INVALID naming the variable.
 */
export function loadServerConfig(
  env: NodeJS.ProcessEnv = process.env,
  argv: readonly string[] = [],
): ServerConfig {
  const emulator = argv.includes("--emulator") || env.M365_EMULATOR === "1";
  const portFlag = argv.indexOf("--port");
  const port = portFlag >= 0 ? Number(argv[portFlag + 1]) : int(env, "PORT", 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw invalid("the port is not a valid port", "Use --port 0..65535.");
  const transports = list(env.TRANSPORTS ?? (emulator ? "graph,smtp,imap" : "graph,smtp"));
  for (const t of transports) {
    if (t !== "graph" && t !== "smtp" && t !== "imap") {
      throw invalid(`TRANSPORTS holds unknown "${t}"`, "Use a comma list of graph, smtp, imap.");
    }
  }
  const outbox = oneOf(env, "OUTBOX", ["sqlite", "redis"] as const, "sqlite");
  const redisUrl = env.REDIS_URL || undefined;
  if (outbox === "redis" && !redisUrl)
    throw invalid("OUTBOX=redis needs REDIS_URL", "Set REDIS_URL, e.g. redis://127.0.0.1:6379.");
  const deviceCode = env[M365_SETTINGS.auth.env] === "device-code";
  const tokenCache = oneOf(
    env,
    "TOKEN_CACHE",
    ["memory", "redis", "file"] as const,
    redisUrl ? "redis" : deviceCode ? "file" : "memory",
  );
  if (tokenCache === "redis" && !redisUrl)
    throw invalid("TOKEN_CACHE=redis needs REDIS_URL", "Set REDIS_URL.");
  if (deviceCode && tokenCache === "memory") {
    throw invalid(
      "M365_AUTH=device-code needs the token cache the sign-in was stored in",
      "Set TOKEN_CACHE=file with M365_TOKEN_CACHE_FILE and M365_CACHE_KEY (what `m365-mail login --device-code` wrote), or TOKEN_CACHE=redis with REDIS_URL.",
    );
  }
  let tokenCacheFile: string | undefined;
  let tokenCacheKey: Buffer | undefined;
  if (tokenCache === "file") {
    tokenCacheFile = env[M365_SETTINGS.tokenCacheFile.env];
    const key = env.M365_CACHE_KEY ? Buffer.from(env.M365_CACHE_KEY, "base64") : undefined;
    if (!tokenCacheFile || key?.length !== 32) {
      throw invalid(
        "TOKEN_CACHE=file needs M365_TOKEN_CACHE_FILE and M365_CACHE_KEY (32 bytes, base64)",
        "Run `M365_CACHE_KEY=$(openssl rand -base64 32) m365-mail login --device-code --token-cache-file <path>` and give the server the same M365_TOKEN_CACHE_FILE and M365_CACHE_KEY (or use TOKEN_CACHE=redis with REDIS_URL).",
      );
    }
    registerSecret(env.M365_CACHE_KEY);
    tokenCacheKey = key;
  }
  let apiKeys = parseApiKeyEntries(env.API_KEYS ?? "");
  if (env.API_KEYS_FILE) {
    try {
      apiKeys = apiKeys.concat(parseApiKeyEntries(readFileSync(env.API_KEYS_FILE, "utf8")));
    } catch (error) {
      if (error instanceof M365MailError) throw error;
      throw new M365MailError("CONFIG_INVALID", `cannot read API_KEYS_FILE ${env.API_KEYS_FILE}`, {
        source: SOURCE,
        cause: error,
        hint: "Point API_KEYS_FILE at a file of name:sha256 lines (node dist/main.js --new-api-key prints one).",
      });
    }
  }
  if (apiKeys.length === 0 && !emulator) {
    throw invalid(
      "no API keys configured",
      "Run `node apps/server/dist/main.js --new-api-key <name>` and put the printed hash into API_KEYS (the key itself goes to the client).",
    );
  }
  const transportSet = new Set(transports);
  const readVia = oneOf(
    env,
    "READ_VIA",
    ["graph", "imap"] as const,
    transportSet.has("graph") ? "graph" : "imap",
  );
  const watchVia = oneOf(
    env,
    "WATCH_VIA",
    ["graph", "imap", "off"] as const,
    transportSet.has("imap") ? "imap" : transportSet.has("graph") ? "graph" : "off",
  );
  const webhookUrls = parseWebhookUrls(list(env.WEBHOOK_URLS));
  if (webhookUrls.length > 0 && !env.WEBHOOK_SECRET) {
    throw invalid(
      "WEBHOOK_URLS needs WEBHOOK_SECRET",
      "Set WEBHOOK_SECRET to a long random string the receivers also know.",
    );
  }
  if (env.WEBHOOK_SECRET) registerSecret(env.WEBHOOK_SECRET);
  return {
    host: env.HOST ?? "127.0.0.1",
    port,
    emulator,
    ...(emulator ? {} : { m365: m365SettingsFromEnv(env) }),
    transports: transports as TransportChoice[],
    readVia,
    watchVia,
    watchIntervalMs: int(env, "WATCH_INTERVAL_MS", 15_000, 100),
    apiKeys,
    outbox,
    outboxPath: env.OUTBOX_PATH ?? "data/outbox.db",
    sqliteSynchronous: oneOf(env, "OUTBOX_SQLITE_SYNCHRONOUS", ["FULL", "NORMAL"] as const, "FULL"),
    ...(redisUrl ? { redisUrl } : {}),
    tokenCache,
    ...(tokenCacheFile ? { tokenCacheFile } : {}),
    ...(tokenCacheKey ? { tokenCacheKey } : {}),
    rateLimitPerMinute: int(env, "RATE_LIMIT_PER_MINUTE", 600),
    maxAttachmentBytes: int(env, "MAX_ATTACHMENT_BYTES", 25 * 1024 * 1024, 1),
    corsOrigins: list(env.CORS_ORIGINS),
    webhookUrls,
    ...(env.WEBHOOK_SECRET ? { webhookSecret: env.WEBHOOK_SECRET } : {}),
    maxAttempts: int(env, "OUTBOX_MAX_ATTEMPTS", 8, 1),
    retryBaseMs: int(env, "OUTBOX_RETRY_BASE_MS", 2000, 1),
    sentItemsGraceMs: int(env, "OUTBOX_SENT_ITEMS_GRACE_MS", 10_000),
    redisLockMs: int(env, "OUTBOX_REDIS_LOCK_MS", 30_000, 1000),
    // Microsoft's limits per mailbox are the ceiling: 4 concurrent Graph requests, 3 SMTP connections.
    graphConcurrency: Math.min(4, int(env, "GRAPH_CONCURRENCY", 4, 1)),
    smtpConnections: Math.min(3, int(env, "SMTP_CONNECTIONS", 3, 1)),
    smtpPerMinute: int(env, "SMTP_PER_MINUTE", 30),
    logLevel: oneOf(env, "LOG_LEVEL", ["debug", "info", "warn", "error", "silent"] as const, "info"),
    metricsPublic: env.METRICS_PUBLIC === "1",
    readyCacheMs: int(env, "READYZ_CACHE_MS", 15_000, 1000),
    sseMaxPerKey: int(env, "SSE_MAX_PER_KEY", 5, 1),
    sseMaxTotal: int(env, "SSE_MAX_CONNECTIONS", 200, 1),
  };
}
