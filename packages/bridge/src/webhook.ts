import type { Logger } from "@m365-mail/core";

/** The bridge's `webhookUrl`: events for a person (sign-in problems, spooled messages that need one). */
export interface Webhook {
  /**
   * Fire and forget: a slow or absent receiver never holds up a login or a delivery. An event the
   * receiver did not take (no connection, 429, 5xx) is tried again after each of `retryDelaysMs`.
   */
  post(event: { readonly type: string } & Record<string, unknown>): void;
  setUrl(url: string | undefined): void;
  /** Drops the retries still waiting (the bridge is stopping). */
  close(): void;
}

/** After 5 s, 30 s and 2 min: a receiver restarting or briefly down still gets the event. */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [5_000, 30_000, 120_000];

export function createWebhook(
  url: string | undefined,
  logger: Logger,
  retryDelaysMs: readonly number[] = WEBHOOK_RETRY_DELAYS_MS,
): Webhook {
  let current = url;
  const waiting = new Set<NodeJS.Timeout>();
  const attempt = (event: { readonly type: string }, body: string, tryNumber: number) => {
    const target = current;
    if (!target) return;
    const again = (why: string) => {
      const delay = retryDelaysMs[tryNumber];
      if (delay === undefined) {
        logger.warn(`webhook ${target} did not take a ${event.type} event (${why}); it is not sent again`);
        return;
      }
      logger.warn(
        `webhook ${target} did not take a ${event.type} event (${why}); trying again in ${delay / 1000} s`,
      );
      const timer = setTimeout(() => {
        waiting.delete(timer);
        attempt(event, body, tryNumber + 1);
      }, delay);
      timer.unref();
      waiting.add(timer);
    };
    fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(10_000),
    })
      .then((res) => {
        res.body?.cancel().catch(() => undefined);
        // A 4xx other than 429 will not change by itself: the URL or the receiver is wrong.
        if (res.status === 429 || res.status >= 500) again(`HTTP ${res.status}`);
        else if (!res.ok) logger.warn(`webhook ${target} answered ${res.status} to a ${event.type} event`);
      })
      .catch((error: unknown) => again(`unreachable: ${(error as Error).message}`));
  };
  return {
    post(event) {
      attempt(event, JSON.stringify(event), 0);
    },
    setUrl(next) {
      current = next;
    },
    close() {
      for (const timer of waiting) clearTimeout(timer);
      waiting.clear();
    },
  };
}
