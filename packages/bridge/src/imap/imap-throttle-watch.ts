/**
 * Exchange's IMAP throttling answer, as clients log it: `<tag> NO Request is throttled. Suggested Backoff
 * Time: 299910 milliseconds`, or `BAD` with the same text (bridge-and-federation-facts.md, symptoms row 6).
 */
const THROTTLED =
  /^\S+ (?:NO|BAD) (?:\[[^\]]*\] )?Request is throttled\. Suggested Backoff Time: (\d+) milliseconds/i;
const NEEDLE = Buffer.from("Request is throttled");
/** Longer lines are not a throttling answer: only their ends are kept, to find literals. */
const SHORT_LINE = 256;
const TAIL = 32;

/**
 * Watches the bytes a relayed IMAP session gets from Microsoft 365 for the throttling answer, without
 * changing them. Literals (`{n}` at a line's end, e.g. each message's source in a FETCH) are skipped
 * unread, so mail whose text looks like the answer is never taken for it; of the other lines only the
 * short ones are searched. The cost is one `indexOf` per response line, not per byte.
 */
export class ImapThrottleWatch {
  private literal = 0;
  /** An unfinished line: its first bytes (all of it while short), its last bytes, and its length. */
  private head: Buffer | undefined;
  private tail: Buffer | undefined;
  private pending = 0;

  constructor(private readonly onThrottled: (backoffMs: number) => void) {}

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, chunk.length - i);
        this.literal -= take;
        i += take;
        continue;
      }
      const newline = chunk.indexOf(0x0a, i);
      const end = newline < 0 ? chunk.length : newline + 1;
      const piece = chunk.subarray(i, end);
      i = end;
      if (newline < 0) {
        this.keep(piece);
        return;
      }
      if (this.pending === 0) this.line(piece, piece.length);
      else {
        const length = this.pending + piece.length;
        const joined = Buffer.concat([length <= SHORT_LINE ? this.head! : this.tail!, piece]);
        this.head = this.tail = undefined;
        this.pending = 0;
        this.line(joined, length);
      }
    }
  }

  private keep(piece: Buffer): void {
    const length = this.pending + piece.length;
    if (length <= SHORT_LINE)
      this.head = this.pending === 0 ? Buffer.from(piece) : Buffer.concat([this.head!, piece]);
    else this.head = undefined;
    const tail = this.pending === 0 ? piece : Buffer.concat([this.tail!, piece]);
    this.tail = Buffer.from(tail.subarray(Math.max(0, tail.length - TAIL)));
    this.pending = length;
  }

  /** One whole line (`bytes` is all of it when `length` is short, else at least its last bytes). */
  private line(bytes: Buffer, length: number): void {
    // "{n}" (or "~{n}", "{n+}") right before the line break announces n bytes that are not lines.
    let at = bytes.length - 1;
    if (bytes[at] === 0x0a) at--;
    if (bytes[at] === 0x0d) at--;
    if (bytes[at] === 0x7d) {
      at--;
      if (bytes[at] === 0x2b) at--;
      let size = 0;
      let scale = 1;
      let digits = 0;
      while (at >= 0 && bytes[at]! >= 0x30 && bytes[at]! <= 0x39 && digits < 12) {
        size += (bytes[at]! - 0x30) * scale;
        scale *= 10;
        digits++;
        at--;
      }
      if (digits > 0 && bytes[at] === 0x7b) {
        this.literal = size;
        return;
      }
    }
    if (length > SHORT_LINE || bytes.indexOf(NEEDLE) < 0) return;
    const match = THROTTLED.exec(bytes.toString("latin1"));
    if (match) this.onThrottled(Number(match[1]));
  }
}
