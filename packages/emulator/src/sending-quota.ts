/**
 * Exchange Online's recipient rate limit: 10,000 recipients per mailbox in a rolling 24 hours, counted
 * over everything the mailbox sends — SMTP AUTH and Graph alike — so the emulator keeps one count that
 * both parts share. A message whose recipients would pass it is refused whole; sending resumes as the
 * oldest recipients leave the window.
 * Sources: https://learn.microsoft.com/en-us/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits,
 * https://learn.microsoft.com/en-us/troubleshoot/dynamics-365/sales/errorsubmissionquotaexceeded-exception
 */
export interface SendingQuotaLimits {
  /** Recipients per window per mailbox; 0 turns the limit off. @default 10000 */
  recipientsPerDay: number;
  /** The rolling window in milliseconds (tests shorten it). @default 86400000 */
  recipientWindowMs: number;
}

export const DEFAULT_SENDING_QUOTA: Readonly<SendingQuotaLimits> = {
  recipientsPerDay: 10_000,
  recipientWindowMs: 24 * 3_600_000,
};

/** The problem with a limits patch, in the words of its keys, or undefined when it is valid. */
export function sendingQuotaProblem(limits: Partial<SendingQuotaLimits>): string | undefined {
  const { recipientsPerDay, recipientWindowMs } = limits;
  if (recipientsPerDay !== undefined && (!Number.isInteger(recipientsPerDay) || recipientsPerDay < 0))
    return "recipientsPerDay must be a non-negative integer (0 = no limit)";
  if (recipientWindowMs !== undefined && (typeof recipientWindowMs !== "number" || !(recipientWindowMs > 0)))
    return "recipientWindowMs must be a positive number";
  return undefined;
}

export class SendingQuota {
  private readonly sent = new Map<string, { at: number; count: number }[]>();
  private current: SendingQuotaLimits = { ...DEFAULT_SENDING_QUOTA };

  get limits(): Readonly<SendingQuotaLimits> {
    return { ...this.current };
  }

  /** Applies to the next message; throws on a value Exchange could not have. */
  setLimits(patch: Partial<SendingQuotaLimits>): Readonly<SendingQuotaLimits> {
    const problem = sendingQuotaProblem(patch);
    if (problem) throw new RangeError(problem);
    this.current = {
      recipientsPerDay: patch.recipientsPerDay ?? this.current.recipientsPerDay,
      recipientWindowMs: patch.recipientWindowMs ?? this.current.recipientWindowMs,
    };
    return this.limits;
  }

  /** Counts the message's recipients and returns true, or returns false when they would pass the limit. */
  admit(mailbox: string, recipients: number, now = Date.now()): boolean {
    const { recipientsPerDay, recipientWindowMs } = this.current;
    if (recipientsPerDay === 0) return true;
    const key = mailbox.toLowerCase();
    const list = (this.sent.get(key) ?? []).filter((e) => e.at > now - recipientWindowMs);
    const used = list.reduce((sum, e) => sum + e.count, 0);
    this.sent.set(key, list);
    if (used + recipients > recipientsPerDay) return false;
    list.push({ at: now, count: recipients });
    return true;
  }
}
