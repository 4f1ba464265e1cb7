import { type Logger, M365MailError } from "@m365-mail/core";
import { invalidResponse, type Pop3Reply, SOURCE } from "./pop3-errors.js";

/** What the answer being waited for may look like, and where its data goes. */
export interface Pop3ReadOptions {
  /** A `+OK` starts data lines ending with a lone `.` (LIST, UIDL, RETR, TOP, CAPA). */
  multiline?: boolean;
  /** Accept a SASL continuation (`+ ...`) as an answer. */
  continuation?: boolean;
  /** Hand data on as it arrives instead of collecting it into `data`. */
  sink?: (chunk: Buffer) => void;
  /** Stop (MESSAGE_TOO_LARGE) once the data exceeds this many bytes. */
  maxBytes?: number;
}

export type Pop3Answer = Pop3Reply & { data?: Buffer };

export interface Pop3ResponseReaderOptions {
  log: Logger;
  /** The server broke the protocol or a limit: the connection must go (the client destroys it). */
  onFatal(error: M365MailError): void;
  /** An answer is complete (the client stops its idle clock). */
  onSettled(): void;
}

interface Pending extends Pop3ReadOptions {
  readonly label: string;
  readonly parts: Buffer[];
  received: number;
  inData: boolean;
  text: string;
  resolve(reply: Pop3Answer): void;
  reject(error: Error): void;
}

const CRLF = Buffer.from("\r\n");
const DOT = 0x2e;
// A status line longer than this is not POP3 (RFC 2449 allows 512 octets; be generous).
const MAX_STATUS_LINE = 64 * 1024;

/**
 * Turns the bytes a POP3 server sends into answers: status lines (`+OK`, `-ERR`, SASL `+`), and the
 * dot-terminated, dot-stuffed data of multi-line answers (RFC 1939 §3), collected or streamed. It knows
 * nothing of sockets, timers or commands; the client feeds it and waits on `expect()`.
 */
export class Pop3ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private stopped = false;

  constructor(private readonly options: Pop3ResponseReaderOptions) {}

  /** The label of the answer being waited for, if any. */
  get waiting(): string | undefined {
    return this.pending?.label;
  }

  /** Bytes received and not yet part of an answer. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Waits for the next answer; `label` names it in logs and errors. One answer at a time. */
  expect(label: string, options: Pop3ReadOptions = {}): Promise<Pop3Answer> {
    return new Promise((resolve, reject) => {
      this.pending = {
        ...options,
        label,
        parts: [],
        received: 0,
        inData: false,
        text: "",
        resolve,
        reject,
      };
    });
  }

  /** Feeds bytes from the connection. */
  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.drain();
  }

  /** The connection is gone: the answer being waited for fails with `error`, later bytes are ignored. */
  fail(error: Error): void {
    this.stopped = true;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }

  private drain(): void {
    while (!this.stopped) {
      const pending = this.pending;
      if (!pending) {
        // Unsolicited lines (e.g. a server's farewell before it closes): log and drop them.
        const end = this.buffer.indexOf(CRLF);
        if (end < 0) return;
        this.options.log.debug(`S (unsolicited): ${this.buffer.toString("utf8", 0, Math.min(end, 200))}`);
        this.buffer = this.buffer.subarray(end + 2);
        continue;
      }
      if (pending.inData) {
        if (!this.readData(pending)) return;
        continue;
      }
      const end = this.buffer.indexOf(CRLF);
      if (end < 0) {
        if (this.buffer.length > MAX_STATUS_LINE) {
          this.fatal(
            invalidResponse(
              `the answer to ${pending.label} has no line end after ${this.buffer.length} bytes`,
            ),
          );
        }
        return;
      }
      const line = this.buffer.toString("utf8", 0, end);
      this.buffer = this.buffer.subarray(end + 2);
      this.options.log.debug(`S: ${line.slice(0, 200)}`);
      if (line === "+OK" || line.startsWith("+OK ")) {
        if (pending.multiline) {
          pending.inData = true;
          pending.text = line.slice(4);
          continue;
        }
        this.settle({ status: "ok", text: line.slice(4) });
      } else if (line === "-ERR" || line.startsWith("-ERR ")) {
        this.settle({ status: "err", text: line.slice(5) });
      } else if (pending.continuation && line.startsWith("+")) {
        this.settle({ status: "continue", text: line.slice(1).trim() });
      } else {
        this.fatal(invalidResponse(`unexpected answer to ${pending.label}: "${line.slice(0, 100)}"`));
      }
    }
  }

  /** Consumes data lines of a multi-line answer; returns true when the terminating "." was read. */
  private readData(pending: Pending): boolean {
    const buffer = this.buffer;
    let position = 0;
    let runStart = 0; // start of bytes not yet handed on; dot-stuffed lines split runs
    for (;;) {
      const end = buffer.indexOf(CRLF, position);
      if (end < 0) break;
      if (buffer[position] === DOT) {
        if (end === position + 1) {
          if (!this.emit(pending, buffer.subarray(runStart, position))) return false;
          this.buffer = buffer.subarray(end + 2);
          const data = pending.sink ? undefined : Buffer.concat(pending.parts);
          this.settle({ status: "ok", text: pending.text, ...(data ? { data } : {}) });
          return true;
        }
        // ".." at a line start stands for "." (RFC 1939 §3 byte-stuffing).
        if (!this.emit(pending, buffer.subarray(runStart, position))) return false;
        runStart = position + 1;
      }
      position = end + 2;
    }
    if (!this.emit(pending, buffer.subarray(runStart, position))) return false;
    this.buffer = buffer.subarray(position);
    if (pending.maxBytes !== undefined && pending.received + this.buffer.length > pending.maxBytes + 2) {
      this.tooLarge(pending);
    }
    return false;
  }

  private emit(pending: Pending, chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    pending.received += chunk.length;
    if (pending.maxBytes !== undefined && pending.received > pending.maxBytes) {
      this.tooLarge(pending);
      return false;
    }
    if (pending.sink) pending.sink(chunk);
    else pending.parts.push(chunk);
    return !this.stopped;
  }

  private tooLarge(pending: Pending): void {
    // The server under-reported the size in LIST; POP3 cannot stop a RETR, so the connection goes.
    this.fatal(
      new M365MailError(
        "MESSAGE_TOO_LARGE",
        `the answer to ${pending.label} exceeded the limit of ${pending.maxBytes} bytes; download stopped`,
        { source: SOURCE, hint: "Raise `maxMessageBytes` (default 50 MB), or read the message over Graph." },
      ),
    );
  }

  private fatal(error: M365MailError): void {
    this.stopped = true;
    this.options.onFatal(error);
  }

  private settle(reply: Pop3Answer): void {
    const pending = this.pending!;
    this.pending = undefined;
    this.options.onSettled();
    pending.resolve(reply);
  }
}
