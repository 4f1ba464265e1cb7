import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { fileTokenCache, memoryTokenCache, redisTokenCache, type TokenCache } from "@m365-mail/auth-ropc";
import { type Logger, M365MailError } from "@m365-mail/core";
import { Redis } from "ioredis";
import type { BridgeConfig } from "./config-schema.js";

export async function readCa(config: BridgeConfig): Promise<string | undefined> {
  if (!config.m365.caFile) return undefined;
  try {
    return await readFile(config.m365.caFile, "utf8");
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot read the CA file ${config.m365.caFile}`, {
      source: "bridge",
      cause: error,
      hint: "Check m365.caFile (or M365_CA_FILE / NODE_EXTRA_CA_CERTS).",
    });
  }
}

async function readKeyFile(path: string): Promise<Buffer> {
  try {
    return Buffer.from((await readFile(path, "utf8")).trim(), "base64");
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot read the token cache key file ${path}`, {
      source: "bridge",
      cause: error,
      hint: "tokenCache.keyFile holds 32 random bytes in base64 (openssl rand -base64 32 > FILE; chmod 600 FILE).",
    });
  }
}

/** The configured token cache (and its Redis connection, which the fleet's throttling holds use too); `logger` hears of a Redis entry that cannot be read (it counts as absent). */
export async function openTokenCache(
  config: BridgeConfig,
  env: NodeJS.ProcessEnv,
  logger?: Logger,
): Promise<{ cache: TokenCache; pepper?: Uint8Array; redis?: Redis; closeCache: () => Promise<void> }> {
  const c = config.tokenCache;
  if (c.type === "memory") return { cache: memoryTokenCache(), closeCache: async () => {} };
  const key = c.keyFile
    ? await readKeyFile(c.keyFile)
    : env.M365_CACHE_KEY
      ? Buffer.from(env.M365_CACHE_KEY, "base64")
      : undefined;
  if (c.type === "file") {
    return {
      cache: fileTokenCache({ path: c.path, ...(key ? { key } : {}) }),
      ...(key ? { pepper: key } : {}),
      closeCache: async () => {},
    };
  }
  // One connection per bridge; ioredis reconnects by itself, and a failed command surfaces as CONNECTION_FAILED.
  const client = new Redis(c.url, { maxRetriesPerRequest: 2 });
  // ioredis retries by itself; an outage is logged once (not per reconnect attempt), and again after it ends.
  let down = false;
  client.on("error", (error: Error) => {
    if (down) return;
    down = true;
    logger?.warn(`the Redis token cache is unreachable (${error.message}); retrying`);
  });
  client.on("ready", () => {
    if (down) logger?.info("the Redis token cache is reachable again");
    down = false;
  });
  let cache: TokenCache;
  try {
    cache = redisTokenCache({ client, ...(key ? { key } : {}), ...(logger ? { logger } : {}) });
  } catch (error) {
    client.disconnect();
    throw error;
  }
  return {
    cache,
    ...(key ? { pepper: key } : {}),
    redis: client,
    closeCache: async () => {
      await client.quit().catch(() => undefined);
    },
  };
}

/**
 * The owner of a file token cache (or, before it exists, of its folder) when that is not this process's
 * user: a sign-in stored by root beside a service's cache would be a file the service cannot read.
 */
export async function foreignTokenCacheOwner(
  config: BridgeConfig,
): Promise<{ path: string; uid: number; name?: string } | undefined> {
  if (config.tokenCache.type !== "file" || typeof process.getuid !== "function") return undefined;
  for (const path of [config.tokenCache.path, dirname(config.tokenCache.path)]) {
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    if (info.uid === process.getuid()) return undefined;
    const name = await userName(info.uid);
    return { path, uid: info.uid, ...(name ? { name } : {}) };
  }
  return undefined;
}

async function userName(uid: number): Promise<string | undefined> {
  const passwd = await readFile("/etc/passwd", "utf8").catch(() => "");
  return passwd
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[2] === String(uid))?.[0];
}
