import { describe, expect, it } from "vitest";
import { ImapThrottleWatch } from "../src/imap/imap-throttle-watch.js";

const ANSWER = "Request is throttled. Suggested Backoff Time: 89117 milliseconds";
const literal = (text: string) => `{${Buffer.byteLength(text)}}\r\n${text}`;
/** What a server sends: FETCHes whose literals hold the answer's text, a long line, then the real answer. */
const STREAM = [
  `* 1 FETCH (UID 7 BODY[] ${literal(`x\r\na2 NO ${ANSWER}\r\n`)})\r\n`,
  `* 2 FETCH (UID 8 ENVELOPE ("date" "${"s".repeat(400)}" NIL) BODY[] ${literal(`a2 BAD ${ANSWER}\r\n`)})\r\n`,
  `* 3 FETCH (BODY[] ~${literal(`a2 NO ${ANSWER}\r\n`)})\r\n`,
  "a2 OK FETCH completed.\r\n",
  `a3 NO ${ANSWER}\r\n`,
].join("");

/** Every back-off the watch reported when the stream arrives in pieces of `size` bytes. */
function feedInPieces(text: string, size: number): number[] {
  const seen: number[] = [];
  const watch = new ImapThrottleWatch((ms) => seen.push(ms));
  const bytes = Buffer.from(text, "latin1");
  for (let at = 0; at < bytes.length; at += size) watch.feed(bytes.subarray(at, at + size));
  return seen;
}

describe("ImapThrottleWatch", () => {
  it("finds Exchange's throttling answer once, and never inside a literal, however the bytes are cut", () => {
    for (const size of [1, 2, 3, 7, 16, 64, 255, 256, 257, 1000, STREAM.length]) {
      expect(feedInPieces(STREAM, size), `pieces of ${size}`).toEqual([89117]);
    }
  });

  it("takes the BAD form and a response code, and ignores other answers", () => {
    expect(feedInPieces(`a1 BAD ${ANSWER}\r\n* BYE Connection closed. 14\r\n`, 5)).toEqual([89117]);
    expect(feedInPieces(`a1 NO [UNAVAILABLE] ${ANSWER}\r\n`, 9)).toEqual([89117]);
    expect(feedInPieces(`a1 OK ${ANSWER}\r\n* 1 EXISTS\r\na2 NO Mailbox does not exist\r\n`, 4)).toEqual([]);
  });
});
