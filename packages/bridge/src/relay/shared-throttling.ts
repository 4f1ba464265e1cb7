import { randomUUID } from "node:crypto";
import type { Logger } from "@m365-mail/core";
import type { Redis } from "ioredis";
import type { UpstreamThrottling } from "./upstream-throttling.js";

/** Where bridges announce holds, and where a hold lives (with its back-off as the key's TTL) for bridges that start later. */
export const THROTTLING_CHANNEL = "m365-mail:bridge:throttled";
export const THROTTLING_KEY_PREFIX = "m365-mail:bridge:throttled:";

interface HoldNotice {
  readonly from: string;
  readonly protocol: "imap" | "pop3";
  readonly mailbox: string;
  readonly backoffMs: number;
}

function parseNotice(text: string): HoldNotice | undefined {
  try {
    const n = JSON.parse(text) as Partial<HoldNotice>;
    if (
      typeof n.from === "string" &&
      (n.protocol === "imap" || n.protocol === "pop3") &&
      typeof n.mailbox === "string" &&
      typeof n.backoffMs === "number"
    ) {
      return n as HoldNotice;
    }
  } catch {
    // Not ours: ignored.
  }
  return undefined;
}

/**
 * Bridges that share a Redis token cache share one sign-in per account, so Microsoft 365 throttling a
 * mailbox for one of them throttles it for all: each hold this bridge begins is published to the others
 * (and stored with the back-off as its TTL, for a bridge that starts during it), and holds the others
 * publish are held here too. Redis being away never stops a login: this bridge then holds only what it
 * saw itself, and says so once.
 */
export function shareThrottling(
  throttling: UpstreamThrottling,
  redis: Redis,
  logger: Logger,
): { ready: Promise<void>; close(): Promise<void> } {
  const self = randomUUID();
  let warned = false;
  const failed = (what: string) => (error: unknown) => {
    if (warned) return;
    warned = true;
    logger.warn(
      `throttling holds are not shared with the other bridges (${what} failed: ${error instanceof Error ? error.message : String(error)}); this bridge holds logins only for the throttling it meets itself`,
    );
  };
  const subscriber = redis.duplicate();
  // ioredis reconnects by itself; its error events must not crash the process.
  subscriber.on("error", () => {});
  subscriber.on("message", (_channel: string, text: string) => {
    const notice = parseNotice(text);
    if (notice && notice.from !== self) {
      throttling.note(notice.protocol, notice.mailbox, notice.backoffMs, "fleet");
    }
  });
  const unobserve = throttling.observe((protocol, mailbox, backoffMs) => {
    const notice: HoldNotice = { from: self, protocol, mailbox: mailbox.toLowerCase(), backoffMs };
    redis
      .multi()
      .set(`${THROTTLING_KEY_PREFIX}${protocol}:${notice.mailbox}`, String(backoffMs), "PX", backoffMs)
      .publish(THROTTLING_CHANNEL, JSON.stringify(notice))
      .exec()
      .catch(failed("publishing a hold"));
  });

  const ready = (async () => {
    await subscriber.subscribe(THROTTLING_CHANNEL);
    // Holds begun before this bridge started (or while it was away from Redis).
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${THROTTLING_KEY_PREFIX}*`, "COUNT", 100);
      cursor = next;
      for (const key of keys) {
        const [protocol, ...rest] = key.slice(THROTTLING_KEY_PREFIX.length).split(":");
        const left = await redis.pttl(key);
        if ((protocol === "imap" || protocol === "pop3") && left > 0) {
          throttling.note(protocol, rest.join(":"), left, "fleet");
        }
      }
    } while (cursor !== "0");
  })().catch(failed("reading the fleet's holds"));

  return {
    ready,
    async close() {
      unobserve();
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}
