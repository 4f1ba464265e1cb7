import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { type Logger, M365MailError } from "@m365-mail/core";
import { sqliteWebhookStore, type WebhookDelivery, type WebhookStore } from "./webhook-store.js";

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
  /** Where deliveries wait until they succeed or give up. @default in memory (lost on restart) */
  store?: WebhookStore;
  /** Tries per event and URL. @default 5 */
  attempts?: number;
  /** First wait between tries; doubles. @default 1000 */
  baseDelayMs?: number;
  /** One POST's deadline. @default 10000 */
  timeoutMs?: number;
  /** How often the store is read for deliveries due (another process's, or ones left by a restart). @default 1000 */
  pollMs?: number;
  onOutcome?: (outcome: "ok" | "retry" | "failed") => void;
}

/** http(s) URLs only; anything else is a CONFIG_INVALID naming `variable`. */
export function parseWebhookUrls(urls: readonly string[], variable = "WEBHOOK_URLS"): string[] {
  return urls.map((raw) => {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {}
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `${variable} holds a URL that is not http(s): ${redactUrl(raw)}`,
        {
          source: "server",
          hint: `Set ${variable} to a comma list of http:// or https:// URLs.`,
        },
      );
    }
    return url.href;
  });
}

/** The origin only: a webhook's path or query often carries the receiver's token. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : `${url.protocol}…`;
  } catch {
    return "(not a URL)";
  }
}

/**
 * POSTs events as JSON to every URL, signed with HMAC-SHA256, retried with backoff on a network
 * error, a non-2xx answer or a redirect (never followed: it could point the signed body elsewhere).
 * Each delivery is stored before the first try, so with a durable store a restart does not drop it.
 */
export function webhookSender(options: WebhookOptions) {
  const attempts = options.attempts ?? 5;
  const base = options.baseDelayMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const store = options.store ?? sqliteWebhookStore(":memory:");
  const controller = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let pumping: Promise<void> | undefined;
  let again = false;

  const warn = (message: string, error?: unknown) =>
    options.logger.warn(message, error === undefined ? undefined : { error: String(error) });

  const post = async (delivery: WebhookDelivery): Promise<void> => {
    const attempt = delivery.attempt + 1;
    const timestamp = Math.floor(Date.now() / 1000);
    const origin = redactUrl(delivery.url);
    let ok = false;
    try {
      const response = await fetch(delivery.url, {
        method: "POST",
        redirect: "manual",
        headers: {
          "content-type": "application/json",
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signWebhook(options.secret, timestamp, delivery.body),
        },
        body: delivery.body,
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs)]),
      });
      await response.arrayBuffer().catch(() => undefined);
      ok = response.status >= 200 && response.status < 300;
      if (!ok) options.logger.warn(`webhook answered ${response.status}`, { url: origin, attempt });
    } catch (error) {
      // Closing: leave the delivery due now, for the next start.
      if (controller.signal.aborted) return store.reschedule(delivery, Date.now());
      options.logger.warn("webhook POST failed", {
        url: origin,
        attempt,
        error: String((error as Error)?.message ?? error).replaceAll(delivery.url, origin),
      });
    }
    if (ok) {
      await store.remove(delivery.id);
      options.onOutcome?.("ok");
    } else if (attempt >= attempts) {
      await store.remove(delivery.id);
      options.onOutcome?.("failed");
    } else {
      await store.reschedule({ ...delivery, attempt }, Date.now() + base * 2 ** (attempt - 1));
      options.onOutcome?.("retry");
    }
  };

  const schedule = (ms: number) => {
    if (controller.signal.aborted) return;
    clearTimeout(timer);
    timer = setTimeout(() => void pump(), Math.max(0, ms));
    timer.unref();
  };

  const pumpOnce = async () => {
    const poll = options.pollMs ?? 1000;
    for (;;) {
      if (controller.signal.aborted) return;
      const now = Date.now();
      // The lease outlasts one POST, so a slow receiver is not posted to twice.
      const claimed = await store.claim(now, now + timeoutMs + 5000, 32);
      for (const delivery of claimed) {
        const p: Promise<void> = post(delivery)
          .catch((error) => warn("webhook store error", error))
          .finally(() => {
            inFlight.delete(p);
            schedule(0);
          });
        inFlight.add(p);
      }
      if (claimed.length === 0) break;
    }
    const next = await store.nextDue();
    schedule(next === undefined ? poll : Math.min(poll, next - Date.now()));
  };

  const pump = (): Promise<void> => {
    if (pumping) {
      again = true;
      return pumping;
    }
    pumping = pumpOnce()
      .catch((error) => {
        warn("webhook store error", error);
        schedule(options.pollMs ?? 1000);
      })
      .finally(() => {
        pumping = undefined;
        if (again) {
          again = false;
          void pump();
        }
      });
    return pumping;
  };
  // Deliveries left by an earlier run.
  schedule(0);

  return {
    send(type: string, data: unknown): void {
      const body = JSON.stringify({ id: randomUUID(), type, createdAt: new Date().toISOString(), data });
      const adds = options.urls.map((url) =>
        store.add({ id: randomUUID(), url, body, attempt: 0 }, Date.now()),
      );
      Promise.all(adds).then(
        () => void pump(),
        (error) => warn("webhook store error: event not queued", error),
      );
    },
    async close() {
      controller.abort();
      clearTimeout(timer);
      await pumping;
      await Promise.allSettled([...inFlight]);
      await store.close();
    },
  };
}

export type WebhookSender = ReturnType<typeof webhookSender>;
