import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto";
import { type Logger, M365MailError, safeLogger } from "@m365-mail/core";
import { resolveCacheKey } from "./cache-key.js";
import type { TokenCache, TokenCacheEntry } from "./token-cache.js";

const SOURCE = "auth-ropc";

/**
 * The few Redis commands the cache uses; an `ioredis` 5 client (`new Redis(url)`) fits. Taking a client
 * instead of a URL keeps ioredis out of this package's dependencies and lets the application share one
 * connection (TLS, Sentinel, Cluster) with the rest of its code.
 */
export interface RedisTokenCacheClient {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ...args: any[]): Promise<unknown>;
  del(key: string): Promise<number>;
  eval(script: string, numberOfKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

export interface RedisTokenCacheOptions {
  /** A connected client, e.g. `new Redis(process.env.REDIS_URL)` from ioredis 5. Not closed by the cache. */
  client: RedisTokenCacheClient;
  /** 32 random bytes that encrypt every entry (AES-256-GCM). @default M365_CACHE_KEY (base64) */
  key?: Uint8Array;
  /** Prepended to every Redis key. @default "m365-mail:tokens:" */
  prefix?: string;
  /** A held lock expires after this long unless renewed (a crashed holder frees it by then). @default 30000 */
  lockTtlMs?: number;
  /** How long `withLock` waits for another process's grant before failing with TIMEOUT. @default 60000 */
  lockWaitMs?: number;
  /** Told (warn) when an entry cannot be read and counts as absent. @default silent */
  logger?: Logger;
}

interface Stored {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

const UNLOCK = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

function redisFailure(operation: string, error: unknown): M365MailError {
  return new M365MailError("CONNECTION_FAILED", `the Redis token cache could not ${operation}`, {
    source: SOURCE,
    cause: error,
    hint: "Check that Redis is reachable at the URL the client was created with.",
  });
}

/**
 * Tokens shared by several processes through Redis: one password grant serves them all. Every value is
 * encrypted with AES-256-GCM (the Redis key is authenticated too, so a value cannot be moved to another
 * key); entries with `expiresAt` get a matching Redis expiry. An entry that does not decrypt (another
 * key, another name, damaged) reads as absent with a warning, so the next sign-in replaces it instead of
 * failing. `withLock` is a Redis lock (SET NX PX, renewed while held, released by compare-and-delete)
 * that the token provider takes around every grant, so concurrent processes wait for one sign-in
 * instead of each signing in.
 */
export function redisTokenCache(options: RedisTokenCacheOptions): Required<TokenCache> {
  const { client } = options;
  if (!client || typeof client.get !== "function" || typeof client.eval !== "function") {
    throw new M365MailError("CONFIG_INVALID", "redisTokenCache needs `client`, a Redis client", {
      source: SOURCE,
      hint: "Pass client: new Redis(process.env.REDIS_URL) (npm install ioredis).",
    });
  }
  const key = resolveCacheKey(options.key, "redisTokenCache", ", the same in every process, or pass key");
  const prefix = options.prefix ?? "m365-mail:tokens:";
  const lockTtlMs = options.lockTtlMs ?? 30_000;
  const lockWaitMs = options.lockWaitMs ?? 60_000;
  const log = safeLogger(options.logger, SOURCE);

  const seal = (name: string, entry: TokenCacheEntry): string => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(name, "utf8"));
    const data = Buffer.concat([cipher.update(JSON.stringify(entry), "utf8"), cipher.final()]);
    const stored: Stored = {
      v: 1,
      iv: iv.toString("base64"),
      tag: cipher.getAuthTag().toString("base64"),
      data: data.toString("base64"),
    };
    return JSON.stringify(stored);
  };

  /** The entry, or undefined (with a warning) when it does not decrypt or is not an entry. */
  const open = (name: string, text: string): TokenCacheEntry | undefined => {
    try {
      const stored = JSON.parse(text) as Stored;
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(stored.iv, "base64"));
      decipher.setAAD(Buffer.from(name, "utf8"));
      decipher.setAuthTag(Buffer.from(stored.tag, "base64"));
      const plain = Buffer.concat([decipher.update(Buffer.from(stored.data, "base64")), decipher.final()]);
      const entry = JSON.parse(plain.toString("utf8")) as TokenCacheEntry;
      if (typeof entry?.value !== "string") throw new TypeError("no value");
      return entry;
    } catch (error) {
      log.warn(
        `the Redis token cache entry ${name} cannot be read (${error instanceof Error ? error.name : "error"}): it counts as absent and the next sign-in replaces it. If this repeats, give every process the same M365_CACHE_KEY (or key).`,
      );
      return undefined;
    }
  };

  return {
    async get(name) {
      let text: string | null;
      try {
        text = await client.get(prefix + name);
      } catch (error) {
        throw redisFailure("read", error);
      }
      if (text === null) return undefined;
      const entry = open(prefix + name, text);
      if (!entry || (entry.expiresAt !== undefined && entry.expiresAt <= Date.now())) return undefined;
      return entry;
    },
    async set(name, entry) {
      const value = seal(prefix + name, entry);
      try {
        if (entry.expiresAt !== undefined) {
          const ttl = Math.max(1, Math.floor(entry.expiresAt - Date.now()));
          await client.set(prefix + name, value, "PX", ttl);
        } else await client.set(prefix + name, value);
      } catch (error) {
        throw redisFailure("write", error);
      }
    },
    async delete(name) {
      try {
        await client.del(prefix + name);
      } catch (error) {
        throw redisFailure("delete", error);
      }
    },
    async withLock(name, task) {
      const lockKey = `${prefix}${name}:lock`;
      const owner = randomUUID();
      const deadline = Date.now() + lockWaitMs;
      let wait = 20;
      for (;;) {
        let acquired: unknown;
        try {
          acquired = await client.set(lockKey, owner, "PX", lockTtlMs, "NX");
        } catch (error) {
          throw redisFailure("take the sign-in lock", error);
        }
        if (acquired === "OK") break;
        if (Date.now() >= deadline) {
          throw new M365MailError(
            "TIMEOUT",
            `waited ${lockWaitMs} ms for another process's sign-in (Redis lock ${lockKey})`,
            {
              source: SOURCE,
              hint: "Another process holds the sign-in lock; if it hangs, check its access to Entra ID. The lock frees itself after lockTtlMs.",
            },
          );
        }
        // Jittered polling: the holder usually finishes within one token request.
        await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait));
        wait = Math.min(wait * 2, 250);
      }
      const renew = setInterval(
        () => {
          client.eval(RENEW, 1, lockKey, owner, lockTtlMs).catch(() => undefined);
        },
        Math.max(1000, Math.floor(lockTtlMs / 3)),
      );
      renew.unref();
      try {
        return await task();
      } finally {
        clearInterval(renew);
        await client.eval(UNLOCK, 1, lockKey, owner).catch(() => undefined);
      }
    },
  };
}
