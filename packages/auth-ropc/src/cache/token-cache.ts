/** One cached secret: an access token, a refresh token, or msal's serialized cache for one user. */
export interface TokenCacheEntry {
  /** The secret itself. Never the password. */
  readonly value: string;
  /** Milliseconds since the epoch after which the entry is useless; absent: until replaced. */
  readonly expiresAt?: number;
  /** Scopes an access token was granted. */
  readonly scopes?: readonly string[];
}

/**
 * Where tokens outlive a process. Async so that a shared store (Redis, a database) can implement it.
 * Keys are built by the provider (tenant, app, user, resource); values are secrets: store them safely.
 * A cache does not register what it reads with core's redactor: the engine that uses an entry registers
 * the tokens in it (an entry may be msal's whole serialized cache, which is no string to look for).
 */
export interface TokenCache {
  /** The entry, or undefined when absent or expired. */
  get(key: string): Promise<TokenCacheEntry | undefined>;
  set(key: string, entry: TokenCacheEntry): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * Optional: runs `task` while holding a lock named `key` that every process sharing this cache
   * respects. The provider takes it around each grant, so that processes sharing a store sign in once
   * (the others then find the fresh token in the cache) and never use a rotated refresh token twice.
   */
  withLock?<T>(key: string, task: () => Promise<T>): Promise<T>;
}
