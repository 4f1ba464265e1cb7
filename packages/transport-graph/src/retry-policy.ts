/** How the transport retries throttled and failed requests. */
export interface GraphRetryOptions {
  /**
   * Tries per request, the first one included.
   * @default 5
   */
  attempts?: number;
  /**
   * First backoff step when the server gives no `Retry-After`; doubles per try, with jitter.
   * @default 500
   */
  baseDelayMs?: number;
  /**
   * Longest single wait. A `Retry-After` longer than this ends the retries with THROTTLED.
   * @default 30000
   */
  maxDelayMs?: number;
  /**
   * Longest total wait across all tries of one request.
   * @default 60000
   */
  maxWaitMs?: number;
}

export type ResolvedRetryOptions = Required<GraphRetryOptions>;

export function resolveRetryOptions(options: GraphRetryOptions | undefined): ResolvedRetryOptions {
  return {
    attempts: Math.max(1, Math.floor(options?.attempts ?? 5)),
    baseDelayMs: Math.max(0, options?.baseDelayMs ?? 500),
    maxDelayMs: Math.max(0, options?.maxDelayMs ?? 30_000),
    maxWaitMs: Math.max(0, options?.maxWaitMs ?? 60_000),
  };
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Exponential backoff with "equal jitter": half the step is fixed, half random, so that clients
 * throttled together spread out but none retries immediately.
 */
export function backoffDelay(attempt: number, options: ResolvedRetryOptions, random = Math.random): number {
  const step = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
