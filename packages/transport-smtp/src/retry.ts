import { aborted } from "./message-rate-limiter.js";

export interface SmtpRetryOptions {
  /** Retries after the first attempt, for 4xx replies and dropped connections. @default 3 */
  attempts?: number;
  /** First wait; doubled on each retry (with jitter). @default 1000 */
  baseDelayMs?: number;
  /** Longest wait. @default 30000 */
  maxDelayMs?: number;
}

export const DEFAULT_RETRY: Required<SmtpRetryOptions> = {
  attempts: 3,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
};

/** Exponential backoff with "equal jitter": half fixed, half random, so that pooled senders spread out. */
export function backoffDelay(
  retry: number,
  options: Required<SmtpRetryOptions>,
  random = Math.random,
): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** retry);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
