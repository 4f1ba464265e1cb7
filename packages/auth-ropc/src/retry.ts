import { type Logger, M365MailError } from "@m365-mail/core";

export interface RetryOptions {
  /** Retries after the first attempt. @default 2 */
  attempts?: number;
  /** First back-off; doubles each retry, with jitter. @default 500 */
  baseDelayMs?: number;
  /** A Retry-After longer than this is not waited for: the THROTTLED error goes to the caller. @default 60000 */
  maxDelayMs?: number;
}

// Only failures of the exchange itself are retried. Sign-in refusals (MFA, consent, disabled, locked,
// wrong password, ...) would fail the same way again and may lock the account.
const RETRIED = new Set(["THROTTLED", "SERVER_ERROR", "TIMEOUT", "INVALID_RESPONSE", "CONNECTION_FAILED"]);

export function isRetriable(error: unknown): error is M365MailError {
  return error instanceof M365MailError && error.retryable && RETRIED.has(error.code);
}

/** The delay before retry `n` (0-based): Retry-After when given, else exponential back-off with jitter. */
export function retryDelayMs(error: M365MailError, n: number, baseDelayMs: number): number {
  if (error.retryAfterSeconds !== undefined) return error.retryAfterSeconds * 1000;
  const backoff = baseDelayMs * 2 ** n;
  return Math.round(backoff / 2 + Math.random() * (backoff / 2));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function withRetry<T>(
  task: () => Promise<T>,
  options: Required<RetryOptions>,
  logger: Logger,
  what: string,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await task();
    } catch (error) {
      if (!isRetriable(error) || n >= options.attempts) throw error;
      const delay = retryDelayMs(error, n, options.baseDelayMs);
      if (delay > options.maxDelayMs) throw error;
      logger.warn(`${what} failed (${error.code}); retry ${n + 1} of ${options.attempts} in ${delay} ms`, {
        status: error.status,
        serverCode: error.serverCode,
      });
      await sleep(delay);
    }
  }
}
