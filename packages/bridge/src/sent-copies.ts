/** How long after sending the bridge expects the client's own Sent Items upload (clients do it at once). */
const REMEMBER_MS = 15 * 60_000;
/** Bounded, whatever the traffic: the oldest are forgotten first (a forgotten one is only kept twice). */
const MAX_REMEMBERED = 10_000;

/**
 * Messages the bridge sent for accounts with `sentCopies: "drop"`, so that the copy the mail client
 * uploads to Sent Items right after (IMAP APPEND) can be left out: Microsoft 365 files its own copy of
 * every message sent over Graph or SMTP. Matched by mailbox and Message-ID, each at most once, within
 * 15 minutes: any other upload goes through unchanged.
 */
export class SentCopies {
  private readonly sent = new Map<string, number>();

  constructor(
    private readonly dropsFor: (account: string) => boolean,
    private readonly onLeftOut: (account: string) => void = () => {},
  ) {}

  /** True when this account's clients' Sent Items uploads of mail the bridge sent are left out. */
  drops(account: string): boolean {
    return this.dropsFor(account);
  }

  /** The bridge sent (or spooled) `messageId` from `mailbox` for `account`. */
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
  }

  /** A client's upload was left out (for the metrics). */
  leftOut(account: string): void {
    this.onLeftOut(account);
  }

  /** True (once) when the bridge sent `messageId` from `mailbox` in the last 15 minutes. */
  take(mailbox: string, messageId: string, now = Date.now()): boolean {
    const key = keyOf(mailbox, messageId);
    const expires = key ? this.sent.get(key) : undefined;
    if (expires === undefined) return false;
    this.sent.delete(key!);
    return expires > now;
  }
}

function keyOf(mailbox: string, messageId: string): string | undefined {
  const id = messageId.trim().replace(/^<|>$/g, "");
  return id ? `${mailbox.toLowerCase()} ${id}` : undefined;
}
