import { Transform, type TransformCallback } from "node:stream";
import type { SentCopies } from "../sent-copies.js";
import { headerField } from "../smtp/recipients.js";
import { ImapResponseLines, literalAtEnd } from "./imap-response-lines.js";

/** Enough of a line's end to hold its literal marker. */
const TAIL = 24;
/**
 * `tag APPEND mailbox [(flags)] ["date-time"] {n}` with the message as the command's first literal. A
 * mailbox sent as a literal, CATENATE and binary literals do not match and go through untouched.
 */
const APPEND =
  /^([^\s+(){%*"\\\]]+) APPEND (?:"(?:[^"\\]|\\.)*"|[^\s{"(]+)(?: \([^)]*\))?(?: "[^"]*")? \{(\d{1,10})(\+?)\}\r?\n$/i;
const COMPRESS = /^\S+ COMPRESS /i;
/** Command lines up to this long are held whole until their end; a longer one (a huge UID set) is no APPEND. */
const HELD_LINE_BYTES = 8 * 1024;
/** The Message-ID is looked for in this much of the message's start. */
const PEEK_BYTES = 64 * 1024;

/**
 * Server → client, unchanged, except that the bridge can put a line of its own between two responses
 * (never inside one or inside a literal): the `+` that asks the client for an APPEND's message. `onLine`
 * sees each response line too (the throttling watch), so the stream is scanned once.
 */
export class ResponseJoints extends Transform {
  private readonly lines = new ImapResponseLines();
  private readonly waiting: Buffer[] = [];

  constructor(private readonly onLine?: (bytes: Buffer, length: number) => void) {
    super();
  }

  insert(line: string): void {
    if (this.lines.atResponseEnd) this.push(Buffer.from(line, "latin1"));
    else this.waiting.push(Buffer.from(line, "latin1"));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let from = 0;
    this.lines.feed(chunk, (end, bytes, length) => {
      this.onLine?.(bytes, length);
      if (this.waiting.length === 0) return;
      this.push(chunk.subarray(from, end));
      from = end;
      for (const line of this.waiting.splice(0)) this.push(line);
    });
    if (from < chunk.length) this.push(from === 0 ? chunk : chunk.subarray(from));
    done();
  }
}

interface HeldAppend {
  readonly tag: string;
  readonly line: Buffer;
  readonly size: number;
  readonly synchronizing: boolean;
  readonly start: Buffer[];
  startBytes: number;
}

/**
 * Client → server, unchanged, except for one thing: an APPEND whose message the bridge itself sent a
 * moment ago (same mailbox and Message-ID, see SentCopies) is answered without uploading it, because
 * Microsoft 365 already filed its own copy in Sent Items. The APPEND is held until the Message-ID is
 * read (the bridge gives the client the `+` for a synchronizing literal itself); then either it goes on
 * as it came (as a LITERAL+ literal: the client already had its `+`), or its bytes are dropped and the
 * server is sent `<tag> NOOP`, whose `<tag> OK` completes the client's command in order with the rest.
 * Every other byte is passed through as it arrives.
 */
export class SentCopyFilter extends Transform {
  private state: "line" | "literal" | "peek" | "drop" | "drop-tail" | "off" = "line";
  private line: Buffer[] = [];
  private lineBytes = 0;
  /** The current line was too long to hold: already passed on, only its end is kept. */
  private passing = false;
  private tail = "";
  /** The current line continues a command after a literal (so it starts no command). */
  private continuing = false;
  private literalLeft = 0;
  private held: HeldAppend | undefined;
  /** The held APPEND's start is in: decide before reading on. */
  private readyToDecide = false;

  constructor(
    private readonly options: {
      readonly mailbox: string;
      readonly sentCopies: SentCopies;
      readonly joints: ResponseJoints;
      readonly onDropped: (messageId: string) => void;
    },
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    // Asynchronous only while a held APPEND is decided (the fleet's ledger is in Redis); the stream
    // hands over the next chunk once this one is done.
    this.consume(chunk).then(() => done(), done);
  }

  private async consume(chunk: Buffer): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.readyToDecide) {
        this.readyToDecide = false;
        await this.decide();
      }
      switch (this.state) {
        case "off":
          this.push(pos === 0 ? chunk : chunk.subarray(pos));
          pos = chunk.length;
          break;
        case "literal": {
          const n = Math.min(this.literalLeft, chunk.length - pos);
          this.push(chunk.subarray(pos, pos + n));
          this.literalLeft -= n;
          pos += n;
          if (this.literalLeft === 0) this.state = "line";
          break;
        }
        case "drop": {
          const n = Math.min(this.literalLeft, chunk.length - pos);
          this.literalLeft -= n;
          pos += n;
          if (this.literalLeft === 0) this.state = "drop-tail";
          break;
        }
        case "drop-tail": {
          // The CRLF that ends the APPEND (Exchange offers no MULTIAPPEND: nothing else may follow).
          const newline = chunk.indexOf(10, pos);
          if (newline < 0) {
            pos = chunk.length;
            break;
          }
          pos = newline + 1;
          this.push(Buffer.from(`${this.held!.tag} NOOP\r\n`, "latin1"));
          this.held = undefined;
          this.continuing = false;
          this.state = "line";
          break;
        }
        case "peek":
          pos = this.peek(chunk, pos);
          break;
        case "line":
          pos = this.readLine(chunk, pos);
          break;
      }
    }
    if (this.readyToDecide) {
      this.readyToDecide = false;
      await this.decide();
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.line.length > 0) this.push(Buffer.concat(this.line));
    done();
  }

  private readLine(chunk: Buffer, pos: number): number {
    const newline = chunk.indexOf(10, pos);
    const end = newline < 0 ? chunk.length : newline + 1;
    const part = chunk.subarray(pos, end);
    if (this.passing) {
      this.push(part);
    } else {
      this.line.push(part);
      this.lineBytes += part.length;
      if (newline < 0 && this.lineBytes > HELD_LINE_BYTES) {
        this.push(Buffer.concat(this.line));
        this.passing = true;
        this.line = [];
        this.lineBytes = 0;
      }
    }
    this.tail = (this.tail + part.toString("latin1", Math.max(0, part.length - TAIL))).slice(-TAIL);
    if (newline < 0) return end;

    const whole = this.passing ? undefined : Buffer.concat(this.line);
    const tail = this.tail;
    const startsCommand = !this.continuing;
    this.line = [];
    this.lineBytes = 0;
    this.passing = false;
    this.tail = "";
    const append = whole && startsCommand ? APPEND.exec(whole.toString("latin1")) : null;
    if (append) {
      this.held = {
        tag: append[1]!,
        line: whole!,
        size: Number(append[2]),
        synchronizing: append[3] !== "+",
        start: [],
        startBytes: 0,
      };
      if (this.held.synchronizing) this.options.joints.insert("+ Ready for literal data.\r\n");
      this.state = "peek";
      if (this.held.size === 0) this.readyToDecide = true;
      return end;
    }
    if (whole) this.push(whole);
    if (whole && startsCommand && COMPRESS.test(whole.toString("latin1"))) {
      // From here the bytes are deflated: nothing more can be read in them.
      this.state = "off";
      return end;
    }
    const literal = literalAtEnd(Buffer.from(tail, "latin1"));
    this.continuing = literal !== undefined;
    if (literal) {
      this.literalLeft = literal;
      this.state = "literal";
    }
    return end;
  }

  private peek(chunk: Buffer, pos: number): number {
    const held = this.held!;
    const n = Math.min(held.size - held.startBytes, chunk.length - pos);
    held.start.push(chunk.subarray(pos, pos + n));
    held.startBytes += n;
    const start = held.start.length === 1 ? held.start[0]! : Buffer.concat(held.start);
    if (held.startBytes === held.size || held.startBytes >= PEEK_BYTES || start.includes("\r\n\r\n")) {
      this.readyToDecide = true;
    }
    return pos + n;
  }

  /** The message's start is in: leave it out (Microsoft 365 filed it) or let the APPEND go on. */
  private async decide(): Promise<void> {
    const held = this.held!;
    const start = Buffer.concat(held.start);
    const headerEnd = start.indexOf("\r\n\r\n");
    const header = start.toString("latin1", 0, headerEnd < 0 ? start.length : headerEnd);
    const messageId = headerField(header, "message-id")?.[1]
      ?.replace(/\r?\n[ \t]+/g, " ")
      .trim();
    this.literalLeft = held.size - held.startBytes;
    if (messageId && (await this.options.sentCopies.take(this.options.mailbox, messageId))) {
      this.options.onDropped(messageId);
      this.state = this.literalLeft > 0 ? "drop" : "drop-tail";
      return;
    }
    // The client had its `+` from the bridge; the server must not send another: LITERAL+ (Exchange and
    // Dovecot offer it; the filter is only used when the server does).
    const line = held.synchronizing
      ? Buffer.from(held.line.toString("latin1").replace(/\{(\d+)\}(\r?\n)$/, "{$1+}$2"), "latin1")
      : held.line;
    this.push(line);
    this.push(start);
    this.held = undefined;
    this.continuing = true;
    this.state = this.literalLeft > 0 ? "literal" : "line";
  }
}
