import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { M365MailError, registerSecret } from "@m365-mail/core";

/** An API key as configured: a name for logs, metrics and rate limits, and the SHA-256 of the key. */
export interface StoredApiKey {
  name: string;
  /** 32 bytes. */
  sha256: Buffer;
  /** Sees every key's outbox messages and events (`name:<hash>:admin`); others see only their own. */
  admin?: boolean;
}

const KEY_PREFIX = "m365_";

/**
 * A new key: 32 random bytes (256 bits) in base64url. Keys this strong need no slow hash: SHA-256
 * at rest cannot be brute-forced, and it keeps the check cheap on every request.
 */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** `name:hex` or `name:hex:admin` entries separated by commas or new lines; `#` starts a comment. */
export function parseApiKeyEntries(text: string): StoredApiKey[] {
  const keys: StoredApiKey[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const match = /^([A-Za-z0-9_.-]{1,64}):(?:sha256:)?([0-9a-fA-F]{64})(:admin)?$/.exec(line);
    if (!match) {
      // The entry may be a raw key pasted by mistake: never echo it.
      throw new M365MailError(
        "CONFIG_INVALID",
        "an API_KEYS entry is not name:<64 hex digits of SHA-256>[:admin]",
        {
          source: "server",
          hint: "Store hashes, not keys: `node apps/server/dist/main.js --new-api-key <name>` prints both.",
        },
      );
    }
    keys.push({
      name: match[1]!,
      sha256: Buffer.from(match[2]!, "hex"),
      ...(match[3] ? { admin: true } : {}),
    });
  }
  return keys;
}

/** A configured key from a fresh random one (emulator mode's development key). */
export function storedKeyFor(name: string, key: string, admin = false): StoredApiKey {
  registerSecret(key);
  return { name, sha256: Buffer.from(hashApiKey(key), "hex"), ...(admin ? { admin: true } : {}) };
}

/**
 * Returns the name of the key that matches, or undefined. Every stored hash is compared, each in
 * constant time, so the answer's timing says nothing about which key (or how much of one) matched.
 */
export function apiKeyVerifier(
  keys: readonly StoredApiKey[],
): (presented: string | undefined) => string | undefined {
  return (presented) => {
    if (!presented || presented.length > 512) return undefined;
    const digest = createHash("sha256").update(presented, "utf8").digest();
    let found: string | undefined;
    for (const key of keys) {
      if (timingSafeEqual(digest, key.sha256) && found === undefined) found = key.name;
    }
    return found;
  };
}

/** The key of a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return match?.[1];
  }
  const header = headers["x-api-key"];
  return typeof header === "string" ? header.trim() : undefined;
}
