import type { Duplex } from "node:stream";

/** Why a read ended without data: the peer closed, a line was too long, or the reader was detached. */
export class ReadError extends Error {
  constructor(
    readonly reason: "closed" | "too-long" | "detached",
    message: string,
  ) {
    super(message);
    this.name = "ReadError";
  }
}

interface Waiter {
  readonly kind: "line" | "bytes";
  readonly count: number;
  resolve(value: Buffer): void;
  reject(error: Error): void;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * Pulls CRLF lines and counted byte runs (IMAP literals) off a socket, one read at a time, for the short
 * dialogues before a relay starts (client commands before login, upstream greeting and sign-in).
 * A line longer than `maxLineBytes` fails the read with "too-long" instead of growing the buffer; while
 * nobody reads, the socket is paused once `maxLineBytes` are buffered, so a flood costs no memory.
 * `detach()` hands back whatever was read ahead (a client's pipelined commands) for the relay to forward.
 */
export class LineReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: Waiter | undefined;
  private ended: ReadError | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.length += chunk.length;
    this.pump();
    if (!this.waiter && this.length >= this.maxLineBytes) this.socket.pause();
  };
  private readonly onEnd = () => this.fail(new ReadError("closed", "the connection was closed"));

  constructor(
    private readonly socket: Duplex,
    private readonly maxLineBytes: number,
  ) {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onEnd);
    socket.resume();
  }

  /** Bytes read ahead and not yet consumed. */
  get buffered(): number {
    return this.length;
  }

  /** The next line, without its CRLF (a bare LF is accepted too, as most servers do). */
  readLine(): Promise<Buffer> {
    return this.wait("line", 0);
  }

  /** Exactly `count` bytes. */
  readBytes(count: number): Promise<Buffer> {
    return this.wait("bytes", count);
  }

  /** Stops reading from the socket (it stays paused) and returns the bytes read ahead. */
  detach(): Buffer {
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onEnd);
    this.socket.off("error", this.onEnd);
    this.socket.pause();
    const rest = this.take(this.length);
    this.fail(new ReadError("detached", "the reader was detached"));
    return rest;
  }

  private wait(kind: Waiter["kind"], count: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error("LineReader: one read at a time"));
    return new Promise<Buffer>((resolve, reject) => {
      this.waiter = { kind, count, resolve, reject };
      this.pump();
      if (this.waiter) {
        if (this.ended) this.fail(this.ended);
        else this.socket.resume();
      }
    });
  }

  private pump(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (waiter.kind === "bytes") {
      if (this.length < waiter.count) return;
      this.waiter = undefined;
      waiter.resolve(this.take(waiter.count));
      return;
    }
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = this.length > 0 ? [joined] : [];
    const end = joined.indexOf(LF);
    if (end === -1 || end > this.maxLineBytes + 1) {
      if (this.length > this.maxLineBytes + 1 || end > this.maxLineBytes + 1) {
        this.waiter = undefined;
        waiter.reject(new ReadError("too-long", `a line is longer than ${this.maxLineBytes} bytes`));
      }
      return;
    }
    const line = this.take(end + 1);
    this.waiter = undefined;
    const cut = line.length >= 2 && line[line.length - 2] === CR ? 2 : 1;
    waiter.resolve(line.subarray(0, line.length - cut));
  }

  private take(count: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = joined.subarray(0, count);
    const rest = joined.subarray(count);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  private fail(error: ReadError): void {
    this.ended ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }
}
