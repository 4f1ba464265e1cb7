import { createHash } from "node:crypto";
import type { Logger } from "@m365-mail/core";
import type { Redis } from "ioredis";

/** How long after sending the bridge expects the client's own Sent Items upload (clients do it at once). */
const REMEMBER_MS = 15 * 60_000;
/** Bounded, whatever the traffic: the oldest are forgotten first (a forgotten one is only kept twice). */
const MAX_REMEMBERED = 10_000;
/** Where a fleet on one Redis keeps what its bridges sent: `<prefix><sha256 of mailbox and Message-ID>`. */
export const SENT_COPIES_KEY_PREFIX = "m365-mail:bridge:sent:";
const TAKE_TIMEOUT_MS = 2_000;

/** What bridges on one Redis share; `take` answers undefined when Redis could not be asked. */
export interface SharedSentCopies {
  remember(key: string, ttlMs: number): void;
  take(key: string): Promise<boolean | undefined>;
}

/**
 * Messages the bridge sent for accounts with `sentCopies: "drop"`, so that the copy the mail client
 * uploads to Sent Items right after (IMAP APPEND) can be left out: Microsoft 365 files its own copy of
 * every message sent over Graph or SMTP. Matched by mailbox and Message-ID, each at most once, within
 * 15 minutes: any other upload goes through unchanged. With `shared` (a fleet's Redis) a message sent
 * through one bridge is matched on another, once across the fleet; while Redis cannot be asked, each
 * bridge matches what it sent itself.
 */
export class SentCopies {
  private readonly sent = new Map<string, number>();

  constructor(
    private readonly dropsFor: (account: string) => boolean,
    private readonly onLeftOut: (account: string) => void = () => {},
    private readonly shared?: SharedSentCopies,
  ) {}

  /** True when this account's clients' Sent Items uploads of mail the bridge sent are left out. */
  drops(account: string): boolean {
    return this.dropsFor(account);
  }

  /** The bridge sent `messageId` from `mailbox` for `account`. */
  remember(account: string, mailbox: string, messageId: string, now = Date.now()): void {
    if (!this.dropsFor(account)) return;
    const key = keyOf(mailbox, messageId);
    if (!key) return;
    this.sent.delete(key);
    this.sent.set(key, now + REMEMBER_MS);
    for (const [old, expires] of this.sent) {
      if (this.sent.size <= MAX_REMEMBERED && expires > now) break;
      this.sent.delete(old);
    }
    this.shared?.remember(key, REMEMBER_MS);
  }

  /** A client's upload was left out (for the metrics). */
  leftOut(account: string): void {
    this.onLeftOut(account);
  }

  /** True (once) when the bridge — or, shared, the fleet — sent `messageId` from `mailbox` in the last 15 minutes. */
  async take(mailbox: string, messageId: string, now = Date.now()): Promise<boolean> {
    const key = keyOf(mailbox, messageId);
    if (!key) return false;
    const expires = this.sent.get(key);
    this.sent.delete(key);
    // The fleet's answer is the one that counts (it was taken at most once); this bridge's own memory
    // only stands in while Redis cannot be asked.
    const fleet = await this.shared?.take(key);
    if (fleet !== undefined) return fleet;
    return expires !== undefined && expires > now;
  }
}

function keyOf(mailbox: string, messageId: string): string | undefined {
  const id = messageId.trim().replace(/^<|>$/g, "");
  return id ? createHash("sha256").update(`${mailbox.toLowerCase()} ${id}`).digest("hex") : undefined;
}

/** The fleet's ledger in Redis: a key per sent message with a 15-minute TTL, taken with GETDEL (once). */
export function redisSentCopies(redis: Redis, logger: Logger): SharedSentCopies {
  let warned = false;
  const failed = (error: unknown) => {
    if (warned) return;
    warned = true;
    logger.warn(
      `sent messages are not shared with the other bridges (Redis: ${error instanceof Error ? error.message : String(error)}); each bridge leaves out the Sent Items uploads of what it sent itself`,
    );
  };
  return {
    remember(key, ttlMs) {
      redis.set(`${SENT_COPIES_KEY_PREFIX}${key}`, "1", "PX", ttlMs).catch(failed);
    },
    async take(key) {
      // The client's APPEND waits for this answer: a Redis that is away (ioredis queues commands while
      // it reconnects) must not hold it for long.
      let timer: NodeJS.Timeout | undefined;
      const away = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${TAKE_TIMEOUT_MS} ms`)),
          TAKE_TIMEOUT_MS,
        );
      });
      try {
        return (await Promise.race([redis.getdel(`${SENT_COPIES_KEY_PREFIX}${key}`), away])) !== null;
      } catch (error) {
        failed(error);
        return undefined;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
