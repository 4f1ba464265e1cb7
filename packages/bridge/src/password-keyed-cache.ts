import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import type { TokenCache, TokenCacheEntry } from "@m365-mail/auth-ropc";
import { type Logger, silentLogger } from "@m365-mail/core";

/**
 * Where sealed entries live: `passthrough:` before the provider's own name. A mapped account for the
 * same Microsoft 365 user keeps its plain entries under the provider's names in the same store; without
 * this the two overwrote each other (a sealed `pk1.…` value read as msal JSON failed the mapped sign-in,
 * and a plain value read here was replaced by a sealed one).
 */
export const PASSWORD_KEYED_PREFIX = "passthrough:";

const VERSION = "pk1";

/**
 * Wraps a token cache (memory, file, Redis) so every value is sealed with a key derived from the user's
 * own password (passthrough accounts): the bridge's store holds nothing usable without that password.
 * Entries are kept under their own names (`PASSWORD_KEYED_PREFIX`), apart from a mapped account's plain
 * entries for the same user. A value that does not open with this password reads as absent — so a
 * changed password "just works" (one password grant with the new one, which overwrites the entry) and a
 * wrong password can never ride on a token cached for the right one. A value that is not sealed at all
 * (written by something else) is absent too, with a warning: it never fails a sign-in.
 *
 * The key is HKDF-SHA256 over the password with a salt from the user name and `pepper` (the bridge's
 * own cache key when the store is shared): fast, because the password itself is checked by Entra.
 *
 * Entries sealed before the names were separated (under the provider's names) are moved on first read
 * when they open with this password; anything else under those names belongs to a mapped account.
 */
export function passwordKeyedCache(
  inner: TokenCache,
  username: string,
  password: string,
  pepper: Uint8Array = new Uint8Array(),
  logger: Logger = silentLogger,
): TokenCache {
  const salt = createHash("sha256")
    .update("m365-mail-bridge:v1\0")
    .update(username.toLowerCase())
    .update(pepper)
    .digest();
  const key = Buffer.from(hkdfSync("sha256", password, salt, "token-cache", 32));
  const stored = (name: string) => PASSWORD_KEYED_PREFIX + name;
  // The provider's name is the additional data: a value cannot be moved to another name.
  const seal = (name: string, value: string): string => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(name, "utf8"));
    const data = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return `${VERSION}.${iv.toString("base64")}.${cipher.getAuthTag().toString("base64")}.${data.toString("base64")}`;
  };
  /** The plain value, or why there is none: not a sealed value at all, or sealed with another key. */
  const open = (name: string, value: unknown): { value: string } | { absent: "foreign" | "locked" } => {
    if (typeof value !== "string") return { absent: "foreign" };
    const [version, iv, tag, data] = value.split(".");
    if (version !== VERSION || !iv || !tag || data === undefined) return { absent: "foreign" };
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64"));
      decipher.setAAD(Buffer.from(name, "utf8"));
      decipher.setAuthTag(Buffer.from(tag, "base64"));
      const plain = Buffer.concat([decipher.update(Buffer.from(data, "base64")), decipher.final()]);
      return { value: plain.toString("utf8") };
    } catch {
      return { absent: "locked" };
    }
  };

  /** An entry sealed under the provider's own name by an older bridge, moved to this cache's name. */
  async function legacy(name: string): Promise<TokenCacheEntry | undefined> {
    const entry = await inner.get(name);
    if (!entry) return undefined;
    const opened = open(name, entry.value);
    if (!("value" in opened)) return undefined;
    await inner.set(stored(name), entry);
    await inner.delete(name);
    return { ...entry, value: opened.value };
  }

  const wrapped: TokenCache = {
    async get(name) {
      const entry = await inner.get(stored(name));
      if (!entry) return legacy(name);
      const opened = open(name, entry.value);
      if ("value" in opened) return { ...entry, value: opened.value };
      if (opened.absent === "foreign") {
        logger.warn(
          `token cache entry ${stored(name)} is not sealed for a passthrough login: read as absent (the next sign-in replaces it)`,
        );
      }
      // "locked": sealed with another password (changed, or wrong): absent, as designed.
      return undefined;
    },
    async set(name, entry: TokenCacheEntry) {
      await inner.set(stored(name), { ...entry, value: seal(name, entry.value) });
    },
    delete: async (name) => {
      await inner.delete(stored(name));
    },
  };
  if (inner.withLock) {
    const withLock = inner.withLock.bind(inner);
    wrapped.withLock = (name, task) => withLock(stored(name), task);
  }
  return wrapped;
}
