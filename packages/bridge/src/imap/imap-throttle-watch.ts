import { ImapResponseLines, SHORT_LINE } from "./imap-response-lines.js";

/**
 * Exchange's IMAP throttling answer, as clients log it: `<tag> NO Request is throttled. Suggested Backoff
 * Time: 299910 milliseconds`, or `BAD` with the same text (bridge-and-federation-facts.md, symptoms row 6).
 */
const THROTTLED =
  /^\S+ (?:NO|BAD) (?:\[[^\]]*\] )?Request is throttled\. Suggested Backoff Time: (\d+) milliseconds/i;
const NEEDLE = Buffer.from("Request is throttled");

/**
 * Watches the bytes a relayed IMAP session gets from Microsoft 365 for the throttling answer, without
 * changing them. Literals are skipped unread (ImapResponseLines), so mail whose text looks like the
 * answer is never taken for it; of the other lines only the short ones are searched.
 */
export class ImapThrottleWatch {
  private readonly lines = new ImapResponseLines();

  constructor(private readonly onThrottled: (backoffMs: number) => void) {}

  feed(chunk: Buffer): void {
    this.lines.feed(chunk, (_end, bytes, length) => this.checkLine(bytes, length));
  }

  /** One whole line that announced no literal (`bytes` is all of it when `length` is short). */
  checkLine(bytes: Buffer, length: number): void {
    if (length > SHORT_LINE || bytes.indexOf(NEEDLE) < 0) return;
    const match = THROTTLED.exec(bytes.toString("latin1"));
    if (match) this.onThrottled(Number(match[1]));
  }
}
