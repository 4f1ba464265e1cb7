import { M365MailError } from "@m365-mail/core";
import { DEFAULT_SENDING_QUOTA, type SendingQuotaLimits, sendingQuotaProblem } from "../sending-quota.js";

/**
 * Exchange Online's SMTP AUTH limits per mailbox. `recipientsPerDay` and `recipientWindowMs` are the
 * mailbox's sending quota, which Graph shares (`ctx.sendingQuota`): over SMTP a message that would pass
 * it is refused at the end of DATA with `554 5.2.0 …SubmissionQuotaExceededException`.
 * Source: https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
 */
export interface SmtpLimits extends SendingQuotaLimits {
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
}

export const DEFAULT_SMTP_LIMITS: Readonly<SmtpLimits> = {
  maxConnectionsPerMailbox: 3,
  messagesPerWindow: 30,
  rateWindowMs: 60_000,
  rateLimitMode: "delay",
  ...DEFAULT_SENDING_QUOTA,
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
            : sendingQuotaProblem(limits);
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
