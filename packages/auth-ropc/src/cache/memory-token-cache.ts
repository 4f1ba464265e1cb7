import type { TokenCache, TokenCacheEntry } from "./token-cache.js";

/** The default cache: a Map in this process. Tokens are lost on exit (the next start signs in again). */
export function memoryTokenCache(): TokenCache {
  const entries = new Map<string, TokenCacheEntry>();
  return {
    async get(key) {
      const entry = entries.get(key);
      if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
        entries.delete(key);
        return undefined;
      }
      return entry;
    },
    async set(key, entry) {
      entries.set(key, entry);
    },
    async delete(key) {
      entries.delete(key);
    },
  };
}
