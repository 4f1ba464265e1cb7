import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Logger } from "@m365-mail/core";

export const SIGNATURE_HEADER = "x-m365-signature";
export const TIMESTAMP_HEADER = "x-m365-timestamp";

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the timestamp is signed too, so a captured request cannot be replayed later. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** For receivers: checks the signature in constant time and refuses timestamps older than `toleranceSeconds`. */
export function verifyWebhook(
  secret: string,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: string,
  toleranceSeconds = 300,
  now = Date.now(),
): boolean {
  const timestamp = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(timestamp)) return false;
  if (Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookOptions {
  urls: readonly string[];
  secret: string;
  logger: Logger;
  /** Tries per event and URL. @default 5 */
  attempts?: number;
  /** First wait between tries; doubles. @default 1000 */
  baseDelayMs?: number;
  /** One POST's deadline. @default 10000 */
  timeoutMs?: number;
  onOutcome?: (outcome: "ok" | "retry" | "failed") => void;
}

/**
 * POSTs events as JSON to every URL, signed with HMAC-SHA256, retried with backoff on a network
 * error or a non-2xx answer. Kept in memory: a restart drops events not yet delivered.
 */
export function webhookSender(options: WebhookOptions) {
  const attempts = options.attempts ?? 5;
  const base = options.baseDelayMs ?? 1000;
  const controller = new AbortController();
  const pending = new Set<Promise<void>>();

  const post = async (url: string, body: string): Promise<void> => {
    for (let attempt = 1; attempt <= attempts && !controller.signal.aborted; attempt++) {
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const response = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            [TIMESTAMP_HEADER]: String(timestamp),
            [SIGNATURE_HEADER]: signWebhook(options.secret, timestamp, body),
          },
          body,
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(options.timeoutMs ?? 10_000)]),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.ok) {
          options.onOutcome?.("ok");
          return;
        }
        options.logger.warn(`webhook answered ${response.status}`, { url, attempt });
      } catch (error) {
        options.logger.warn("webhook POST failed", {
          url,
          attempt,
          error: String((error as Error)?.message ?? error),
        });
      }
      if (attempt < attempts) {
        options.onOutcome?.("retry");
        await new Promise((resolve) => setTimeout(resolve, base * 2 ** (attempt - 1)).unref());
      }
    }
    options.onOutcome?.("failed");
  };

  return {
    send(type: string, data: unknown): void {
      const body = JSON.stringify({ id: randomUUID(), type, createdAt: new Date().toISOString(), data });
      for (const url of options.urls) {
        const p = post(url, body).finally(() => pending.delete(p));
        pending.add(p);
      }
    },
    async close() {
      controller.abort();
      await Promise.allSettled([...pending]);
    },
  };
}

export type WebhookSender = ReturnType<typeof webhookSender>;
