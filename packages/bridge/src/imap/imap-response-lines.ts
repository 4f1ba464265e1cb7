/** Lines up to this long are handed over whole; of longer ones only the last bytes (to find literals). */
export const SHORT_LINE = 256;
const TAIL = 32;

/**
 * Finds where each line of an IMAP server's stream ends, reading only line ends: literals (`{n}`,
 * `{n+}` or `~{n}` before a line break, e.g. each message's source in a FETCH) are skipped unread, so
 * their bytes are never taken for lines. The cost is one `indexOf` per response line, not per byte.
 * Shared by the throttling watch and the Sent Items filter's joints, so a stream is scanned once.
 */
export class ImapResponseLines {
  private literal = 0;
  /** An unfinished line: its first bytes (all of it while short), its last bytes, and its length. */
  private head: Buffer | undefined;
  private tail: Buffer | undefined;
  private pending = 0;
  /** A literal was announced: the response goes on after its bytes, up to a line that announces none. */
  private continuing = false;

  /** True between two responses: nothing of a line or a literal is still to come. */
  get atResponseEnd(): boolean {
    return this.literal === 0 && this.pending === 0 && !this.continuing;
  }

  /**
   * Calls `onLine` for each line that ends in `chunk` and announces no literal, with the offset in
   * `chunk` just after it, its bytes (all of them when `length` ≤ SHORT_LINE, else at least its last
   * bytes) and its length. After a literal, the rest of the line up to its break counts as a line.
   */
  feed(chunk: Buffer, onLine: (end: number, bytes: Buffer, length: number) => void): void {
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
      let bytes = piece;
      let length = piece.length;
      if (this.pending > 0) {
        length = this.pending + piece.length;
        bytes = Buffer.concat([length <= SHORT_LINE ? this.head! : this.tail!, piece]);
        this.head = this.tail = undefined;
        this.pending = 0;
      }
      const literal = literalAtEnd(bytes);
      this.continuing = literal !== undefined;
      if (literal !== undefined) this.literal = literal;
      else onLine(end, bytes, length);
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
}

/** n when the line ends with "{n}", "{n+}" or "~{n}" (RFC 3516) before its line break. */
export function literalAtEnd(bytes: Buffer): number | undefined {
  let at = bytes.length - 1;
  if (bytes[at] === 0x0a) at--;
  if (bytes[at] === 0x0d) at--;
  if (bytes[at] !== 0x7d) return undefined;
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
  return digits > 0 && bytes[at] === 0x7b ? size : undefined;
}
