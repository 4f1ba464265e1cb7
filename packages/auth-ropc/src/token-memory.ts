import {
  type AccessToken,
  forgetSecret,
  type GetTokenOptions,
  M365MailError,
  type Resource,
  registerSecret,
  type SignInHealthTracker,
  serialQueue,
} from "@m365-mail/core";
import type { GrantedToken } from "./engine.js";

export interface TokenMemoryOptions {
  /** Renew this long before expiry (at most half the token's lifetime). */
  marginMs: number;
  /** Gets a token from the provider's grants; runs one at a time, after memory was checked again. */
  grant: (resource: Resource, forceRefresh: boolean) => Promise<GrantedToken>;
  /** Sees every grant's outcome: sign-in problems become health events. */
  health: SignInHealthTracker;
  /** The component named in errors: "auth-ropc", "auth-device-code". */
  source: string;
  /** The factory to name when the provider was disposed, e.g. "ropcTokenProvider". */
  factory: string;
}

interface MemoryEntry {
  /** Resolved once and handed to every caller: the fast path allocates nothing. */
  readonly promise: Promise<AccessToken>;
  readonly token: AccessToken;
  readonly refreshAt: number;
}

/**
 * What every token provider does the same way: tokens in memory until `expiresAt - margin` (a Map
 * lookup), concurrent callers of a resource sharing one grant (single flight), grants one at a time
 * (a rotated refresh token is never used twice), a caller's AbortSignal ending only its own wait,
 * and each grant's outcome reported to the sign-in health tracker.
 */
export function tokenMemory(options: TokenMemoryOptions) {
  const { marginMs, health, source } = options;
  const memory = new Map<Resource, MemoryEntry>();
  const inflight = new Map<Resource, { promise: Promise<AccessToken>; forced: boolean }>();
  let disposed = false;
  const queue = serialQueue();

  const invalid = (message: string, hint: string) =>
    new M365MailError("CONFIG_INVALID", message, { source, hint });

  /** Runs `task` after every grant before it, reporting its outcome to the health tracker. */
  function serial<T>(task: () => Promise<T>): Promise<T> {
    const run = queue(task);
    run.then(
      () => health.succeeded(),
      (error: unknown) => health.failed(error),
    );
    return run;
  }

  function remember(resource: Resource, granted: GrantedToken): AccessToken {
    const token: AccessToken = {
      token: granted.token,
      expiresAt: granted.expiresAt,
      resource,
      scopes: granted.scopes,
    };
    const now = Date.now();
    const expires = granted.expiresAt.getTime();
    // A token shorter-lived than twice the margin is renewed at half-life, not on every call.
    const refreshAt = expires - Math.min(marginMs, Math.max(0, (expires - now) / 2));
    const previous = memory.get(resource);
    if (previous && previous.token.token !== token.token) forgetSecret(previous.token.token);
    registerSecret(token.token, { rotating: true });
    memory.set(resource, { promise: Promise.resolve(token), token, refreshAt });
    return token;
  }

  function slow(resource: Resource, forceRefresh: boolean): Promise<AccessToken> {
    if (disposed) {
      return Promise.reject(invalid("the token provider was disposed", `Create a new ${options.factory}.`));
    }
    if (resource !== "graph" && resource !== "outlook") {
      return Promise.reject(
        invalid(`unknown resource "${String(resource)}"`, 'Ask for "graph" or "outlook".'),
      );
    }
    const pending = inflight.get(resource);
    // Concurrent callers share one request; a forced refresh does not settle for a non-forced one.
    if (pending && (pending.forced || !forceRefresh)) return pending.promise;
    const promise = serial(async () => {
      if (!forceRefresh) {
        // Another request may have filled memory while this one waited in the queue.
        const hit = memory.get(resource);
        if (hit && Date.now() < hit.refreshAt) return hit.token;
      }
      return remember(resource, await options.grant(resource, forceRefresh));
    });
    const entry = { promise, forced: forceRefresh };
    inflight.set(resource, entry);
    const clear = () => {
      if (inflight.get(resource) === entry) inflight.delete(resource);
    };
    promise.then(clear, clear);
    return promise;
  }

  function withSignal(promise: Promise<AccessToken>, signal: AbortSignal): Promise<AccessToken> {
    const aborted = () =>
      new M365MailError("ABORTED", "getAccessToken was aborted by the caller", {
        source,
        cause: signal.reason,
      });
    if (signal.aborted) return Promise.reject(aborted());
    // The shared request goes on for the other callers; only this caller stops waiting.
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(aborted());
      signal.addEventListener("abort", onAbort, { once: true });
      promise.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  }

  return {
    getAccessToken(resource: Resource, getOptions?: GetTokenOptions): Promise<AccessToken> {
      const force = getOptions?.forceRefresh === true;
      if (!force) {
        // The fast path: a Map lookup and a clock read, no await, no allocation.
        const hit = memory.get(resource);
        if (hit !== undefined && Date.now() < hit.refreshAt) return hit.promise;
      }
      const promise = slow(resource, force);
      return getOptions?.signal ? withSignal(promise, getOptions.signal) : promise;
    },
    serial,
    remember,
    get disposed() {
      return disposed;
    },
    /** Forgets every token held in memory (they stay wherever the provider's cache keeps them). */
    clear(): void {
      memory.clear();
    },
    /** After this every call fails with CONFIG_INVALID; a grant already running is not waited for. */
    dispose(): void {
      disposed = true;
      memory.clear();
      inflight.clear();
    },
  };
}

export type TokenMemory = ReturnType<typeof tokenMemory>;
