import { M365MailError } from "@m365-mail/core";

/**
 * Exchange Online's SMTP AUTH limits per mailbox.
 * Source: https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
 */
export interface SmtpLimits {
  /** Authenticated connections of one mailbox that may submit at once; the next gets `432 4.3.2`. @default 3 */
  maxConnectionsPerMailbox: number;
  /** Messages per window per mailbox; 0 turns the limit off (benchmarks). @default 30 */
  messagesPerWindow: number;
  /** Window length in milliseconds. @default 60000 */
  rateWindowMs: number;
  /**
   * What happens to messages over the rate: "delay" accepts them and delivers them in later windows
   * (what Microsoft documents today); "reject" answers `421 4.4.2` so that the client retries.
   * @default "delay"
   */
  rateLimitMode: "delay" | "reject";
  /**
   * Recipients per `recipientWindowMs` per mailbox (Exchange: 10,000 a day); a message that would pass it
   * is refused at the end of DATA with `554 5.2.0 …SubmissionQuotaExceededException`. 0 turns it off.
   * @default 10000
   */
  recipientsPerDay: number;
  /** The recipient limit's rolling window in milliseconds (tests shorten it). @default 86400000 */
  recipientWindowMs: number;
}

export const DEFAULT_SMTP_LIMITS: Readonly<SmtpLimits> = {
  maxConnectionsPerMailbox: 3,
  messagesPerWindow: 30,
  rateWindowMs: 60_000,
  rateLimitMode: "delay",
  recipientsPerDay: 10_000,
  recipientWindowMs: 24 * 3_600_000,
};

export function normalizeSmtpLimits(limits: SmtpLimits): SmtpLimits {
  const problem =
    !Number.isInteger(limits.maxConnectionsPerMailbox) || limits.maxConnectionsPerMailbox < 1
      ? "maxConnectionsPerMailbox must be a positive integer"
      : !Number.isInteger(limits.messagesPerWindow) || limits.messagesPerWindow < 0
        ? "messagesPerWindow must be a non-negative integer (0 = no limit)"
        : typeof limits.rateWindowMs !== "number" || !(limits.rateWindowMs > 0)
          ? "rateWindowMs must be a positive number"
          : limits.rateLimitMode !== "delay" && limits.rateLimitMode !== "reject"
            ? 'rateLimitMode must be "delay" or "reject"'
            : !Number.isInteger(limits.recipientsPerDay) || limits.recipientsPerDay < 0
              ? "recipientsPerDay must be a non-negative integer (0 = no limit)"
              : typeof limits.recipientWindowMs !== "number" || !(limits.recipientWindowMs > 0)
                ? "recipientWindowMs must be a positive number"
                : undefined;
  if (problem) {
    throw new M365MailError("CONFIG_INVALID", `invalid SMTP limits: ${problem}`, {
      source: "emulator",
      hint: 'Send e.g. { "messagesPerWindow": 0 } to lift the rate limit, or { "maxConnectionsPerMailbox": 3 }.',
    });
  }
  return { ...limits };
}

/**
 * Authenticated connections per mailbox, in the order they authenticated. A connection may submit
 * while fewer than `max` connections of that mailbox authenticated before it and are still open, as
 * Exchange counts concurrent submitters ("sender thread limit").
 */
export class ConnectionTracker {
  private readonly open = new Map<string, string[]>();
  private readonly peaks = new Map<string, number>();

  /** Registers a session; returns how many connections the mailbox has open now. */
  add(mailbox: string, sessionId: string): number {
    const list = this.open.get(mailbox) ?? [];
    list.push(sessionId);
    this.open.set(mailbox, list);
    if (list.length > (this.peaks.get(mailbox) ?? 0)) this.peaks.set(mailbox, list.length);
    return list.length;
  }

  remove(mailbox: string, sessionId: string): void {
    const list = this.open.get(mailbox);
    if (!list) return;
    const index = list.indexOf(sessionId);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.open.delete(mailbox);
  }

  /** 0-based rank of the session among the mailbox's open connections; -1 when unknown. */
  rank(mailbox: string, sessionId: string): number {
    return this.open.get(mailbox)?.indexOf(sessionId) ?? -1;
  }

  openCount(mailbox: string): number {
    return this.open.get(mailbox)?.length ?? 0;
  }

  /** Most connections a mailbox had open at once since the last reset. */
  peak(mailbox: string): number {
    return this.peaks.get(mailbox) ?? 0;
  }

  snapshot(): { open: Record<string, number>; peak: Record<string, number> } {
    return {
      open: Object.fromEntries([...this.open].map(([m, l]) => [m, l.length])),
      peak: Object.fromEntries(this.peaks),
    };
  }

  resetPeaks(): void {
    this.peaks.clear();
    for (const [mailbox, list] of this.open) this.peaks.set(mailbox, list.length);
  }
}

/**
 * Sliding-window message rate per mailbox. `admit` says when an accepted message may be delivered:
 * now, or at the start of the first window with room (messages carried over, as Exchange does).
 */
export class MessageRate {
  // Delivery times already handed out per mailbox, oldest first.
  private readonly slots = new Map<string, number[]>();

  /** Returns the delivery time for one more message, or undefined when the limit is off. */
  admit(mailbox: string, limits: SmtpLimits, now: number): number {
    if (limits.messagesPerWindow === 0) return now;
    const list = (this.slots.get(mailbox) ?? []).filter((t) => t > now - limits.rateWindowMs);
    const at =
      list.length < limits.messagesPerWindow
        ? now
        : Math.max(now, list[list.length - limits.messagesPerWindow]! + limits.rateWindowMs);
    list.push(at);
    this.slots.set(mailbox, list);
    return at;
  }

  /** Whether one more message now would go over the limit (for "reject" mode); does not count it. */
  wouldExceed(mailbox: string, limits: SmtpLimits, now: number): boolean {
    if (limits.messagesPerWindow === 0) return false;
    const recent = (this.slots.get(mailbox) ?? []).filter((t) => t > now - limits.rateWindowMs && t <= now);
    return recent.length >= limits.messagesPerWindow;
  }

  reset(): void {
    this.slots.clear();
  }
}

/**
 * Recipients each mailbox submitted over a rolling window, as Exchange counts its daily recipient rate
 * limit: a message whose recipients would pass it is refused whole, and sending resumes as the oldest
 * recipients leave the window.
 */
export class RecipientQuota {
  private readonly sent = new Map<string, { at: number; count: number }[]>();

  /** Counts the message's recipients and returns true, or returns false when they would pass the limit. */
  admit(mailbox: string, recipients: number, limits: SmtpLimits, now: number): boolean {
    if (limits.recipientsPerDay === 0) return true;
    const list = (this.sent.get(mailbox) ?? []).filter((e) => e.at > now - limits.recipientWindowMs);
    const used = list.reduce((sum, e) => sum + e.count, 0);
    if (used + recipients > limits.recipientsPerDay) {
      this.sent.set(mailbox, list);
      return false;
    }
    list.push({ at: now, count: recipients });
    this.sent.set(mailbox, list);
    return true;
  }
}
