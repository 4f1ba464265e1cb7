import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import type { TokenCache, TokenCacheEntry } from "@m365-mail/auth-ropc";

/**
 * Wraps a token cache (memory, file, Redis) so every value is sealed with a key derived from the user's
 * own password (passthrough accounts): the bridge's store holds nothing usable without that password.
 * A value that does not open with this password reads as absent — so a changed password "just works"
 * (one password grant with the new one, which overwrites the entry) and a wrong password can never ride
 * on a token cached for the right one.
 *
 * The key is HKDF-SHA256 over the password with a salt from the user name and `pepper` (the bridge's
 * own cache key when the store is shared): fast, because the password itself is checked by Entra.
 */
export function passwordKeyedCache(
  inner: TokenCache,
  username: string,
  password: string,
  pepper: Uint8Array = new Uint8Array(),
): TokenCache {
  const salt = createHash("sha256")
    .update("m365-mail-bridge:v1\0")
    .update(username.toLowerCase())
    .update(pepper)
    .digest();
  const key = Buffer.from(hkdfSync("sha256", password, salt, "token-cache", 32));
  const seal = (name: string, value: string): string => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(name, "utf8"));
    const data = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return `pk1.${iv.toString("base64")}.${cipher.getAuthTag().toString("base64")}.${data.toString("base64")}`;
  };
  const open = (name: string, value: string): string | undefined => {
    const [version, iv, tag, data] = value.split(".");
    if (version !== "pk1" || !iv || !tag || data === undefined) return undefined;
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64"));
      decipher.setAAD(Buffer.from(name, "utf8"));
      decipher.setAuthTag(Buffer.from(tag, "base64"));
      return Buffer.concat([decipher.update(Buffer.from(data, "base64")), decipher.final()]).toString("utf8");
    } catch {
      return undefined;
    }
  };
  const wrapped: TokenCache = {
    async get(name) {
      const entry = await inner.get(name);
      if (!entry) return undefined;
      const value = open(name, entry.value);
      return value === undefined ? undefined : { ...entry, value };
    },
    async set(name, entry: TokenCacheEntry) {
      await inner.set(name, { ...entry, value: seal(name, entry.value) });
    },
    delete: (name) => inner.delete(name),
  };
  if (inner.withLock) wrapped.withLock = inner.withLock.bind(inner);
  return wrapped;
}
