import net from "node:net";
import { Readable } from "node:stream";
import tls from "node:tls";
import {
  decodeSaslChallenge,
  encodeXOAuth2,
  type Logger,
  M365MailError,
  registerSecret,
  type SerialQueue,
  safeLogger,
  serialQueue,
} from "@m365-mail/core";
import { commandError, connectionError, invalidResponse, SOURCE } from "./pop3-errors.js";
import { type Pop3Answer, type Pop3ReadOptions, Pop3ResponseReader } from "./pop3-response-reader.js";

/** `implicit`: TLS from the first byte (port 995, Exchange Online). `starttls`: plain POP3 upgraded with `STLS`. */
export type Pop3Security = "implicit" | "starttls";

export interface ConnectPop3Options {
  host: string;
  /** @default 995 with `tls: "implicit"`, 110 with `tls: "starttls"` */
  port?: number;
  /** @default "implicit" */
  tls?: Pop3Security;
  /** CA certificate(s) to trust in addition to Node's bundled roots (PEM), e.g. the emulator's CA. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** TLS server name (SNI and certificate check). @default host, unless host is an IP address */
  servername?: string;
  /**
   * How long the server may stay silent: while connecting (TCP, TLS and greeting) and while a command
   * waits for its answer (the clock restarts whenever data arrives, so large downloads are fine).
   * @default 30000
   */
  timeoutMs?: number;
  /** Passed through core's safeLogger; commands and status lines are logged at debug, never credentials. */
  logger?: Logger;
  /** Aborting closes the connection; pending and later commands fail with ABORTED. */
  signal?: AbortSignal;
}

export interface Pop3Stat {
  /** Messages in the maildrop (not counting those deleted in this session). */
  readonly count: number;
  /** Their total size in octets. */
  readonly size: number;
}

export interface Pop3ListEntry {
  /** Message number, valid for this session only. */
  readonly number: number;
  readonly size: number;
}

export interface Pop3UidlEntry {
  readonly number: number;
  /** Unique id, stable across sessions. */
  readonly uid: string;
}

export interface Pop3RetrieveOptions {
  /** Refuse (MESSAGE_TOO_LARGE) a message bigger than this, checked with `LIST n` before downloading. */
  maxBytes?: number;
}

interface ExchangeOptions extends Pop3ReadOptions {
  /** What the log and error messages call this command; never the credentials. */
  label?: string;
}

const isIpAddress = (host: string) => net.isIP(host) !== 0;

/**
 * A small POP3 client (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH) that speaks XOAUTH2 the way Exchange
 * Online expects it. Commands are serialised: each waits for the previous one's answer.
 * Create it with `connectPop3()`.
 */
export class Pop3Client {
  /** The server's greeting, without `+OK `. */
  greeting = "";
  private socket: net.Socket | tls.TLSSocket | undefined;
  private readonly reader: Pop3ResponseReader;
  /** Runs a task after every earlier command has finished, so exchanges never interleave. */
  private readonly exclusive: SerialQueue = serialQueue();
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private closedError: M365MailError | undefined;
  private readonly log: Logger;
  private readonly host: string;
  private readonly port: number;
  private readonly security: Pop3Security;
  private readonly timeoutMs: number;
  private readonly detachSignal: () => void;
  private readonly handlers = {
    data: (chunk: Buffer) => this.onData(chunk),
    error: (error: Error) => this.destroy(connectionError(error, this.host, this.port)),
    close: () =>
      this.destroy(
        new M365MailError(
          "CONNECTION_FAILED",
          `the server closed the connection${this.reader.waiting !== undefined ? ` while waiting for the answer to ${this.reader.waiting}` : ""}`,
          { source: SOURCE, hint: "Retry; a POP3 server closes idle or broken sessions." },
        ),
      ),
  };

  /** @internal Use `connectPop3()`. */
  constructor(private readonly options: ConnectPop3Options) {
    this.host = options.host;
    this.security = options.tls ?? "implicit";
    this.port = options.port ?? (this.security === "implicit" ? 995 : 110);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.log = safeLogger(options.logger, SOURCE);
    this.reader = new Pop3ResponseReader({
      log: this.log,
      onFatal: (error) => this.destroy(error),
      onSettled: () => this.clearTimer(),
    });
    const signal = options.signal;
    const onAbort = () =>
      this.destroy(
        new M365MailError("ABORTED", "the POP3 operation was aborted", {
          source: SOURCE,
          cause: signal?.reason,
        }),
      );
    signal?.addEventListener("abort", onAbort, { once: true });
    this.detachSignal = () => signal?.removeEventListener("abort", onAbort);
  }

  /** True once the connection is closed (QUIT, error, timeout or `destroy()`). */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** @internal Opens the connection, reads the greeting and, for `starttls`, upgrades it. */
  async open(): Promise<void> {
    if (this.options.signal?.aborted) {
      throw new M365MailError("ABORTED", "the POP3 operation was aborted", {
        source: SOURCE,
        cause: this.options.signal.reason,
      });
    }
    const tlsOptions = this.tlsOptions();
    const socket =
      this.security === "implicit"
        ? tls.connect({ ...tlsOptions, port: this.port })
        : net.connect({ host: this.host, port: this.port });
    this.attach(socket);
    const greeting = await this.exchange(undefined, { label: "the greeting" });
    if (greeting.status !== "ok") {
      const error = new M365MailError(
        "SERVER_ERROR",
        `the server refused the session: -ERR ${greeting.text}`,
        {
          source: SOURCE,
          hint: "Retry later; the POP3 service is not accepting connections.",
        },
      );
      this.destroy(error);
      throw error;
    }
    this.greeting = greeting.text;
    if (this.security === "starttls") await this.startTls();
  }

  private tlsOptions(): tls.ConnectionOptions {
    const servername = this.options.servername ?? (isIpAddress(this.host) ? undefined : this.host);
    const ca = this.options.ca;
    return {
      host: this.host,
      ...(servername ? { servername } : {}),
      ...(ca ? { ca: (Array.isArray(ca) ? [...ca] : ca) as string | Buffer | (string | Buffer)[] } : {}),
    };
  }

  private async startTls(): Promise<void> {
    const reply = await this.exchange("STLS");
    if (reply.status !== "ok") {
      const error = new M365MailError("CONNECTION_FAILED", `the server refused STLS: -ERR ${reply.text}`, {
        source: SOURCE,
        retryable: false,
        hint: 'The server cannot upgrade this port to TLS: use tls: "implicit" on port 995.',
      });
      this.destroy(error);
      throw error;
    }
    if (this.reader.buffered > 0) {
      // Bytes sent before the handshake could be injected by an attacker (RFC 3207 §6 / CVE-2011-0411 class).
      const error = invalidResponse("the server sent data after +OK to STLS, before the TLS handshake");
      this.destroy(error);
      throw error;
    }
    const plain = this.socket!;
    this.detach(plain);
    const secure = tls.connect({ ...this.tlsOptions(), socket: plain });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(this.timeoutError("the TLS handshake after STLS"));
      }, this.timeoutMs);
      const onError = (error: Error) => {
        cleanup();
        reject(connectionError(error, this.host, this.port));
      };
      const onSecure = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearTimeout(timer);
        secure.off("error", onError);
        secure.off("secureConnect", onSecure);
      };
      secure.once("error", onError);
      secure.once("secureConnect", onSecure);
    }).catch((error: M365MailError) => {
      this.socket = secure;
      this.destroy(error);
      throw error;
    });
    this.attach(secure);
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on("data", this.handlers.data);
    socket.on("error", this.handlers.error);
    socket.on("close", this.handlers.close);
  }

  private detach(socket: net.Socket): void {
    socket.off("data", this.handlers.data);
    socket.off("error", this.handlers.error);
    socket.off("close", this.handlers.close);
  }

  /** `CAPA`: the server's capabilities, one per line (e.g. `SASL PLAIN XOAUTH2`, `UIDL`, `TOP`). */
  async capa(): Promise<string[]> {
    const data = await this.multi("CAPA", false);
    return lines(data);
  }

  /**
   * `AUTH XOAUTH2` in Exchange's two-step form: the command, the server's `+`, then the base64 string.
   * (Exchange refuses the one-line form `AUTH XOAUTH2 <b64>` with "-ERR Protocol error".) A server may answer
   * a bad token with a `+ <base64 JSON>` challenge: the client answers with an empty line and reads the
   * final `-ERR`, so the session stays in step (node-pop3 takes the challenge for success and desynchronises).
   * Fails with AUTH_FAILED; `serverCode` holds the challenge's `status` or the RFC 3206 response code.
   */
  async authXOAuth2(user: string, accessToken: string): Promise<void> {
    registerSecret(accessToken);
    await this.exclusive(async () => {
      const first = await this.exchange("AUTH XOAUTH2", { continuation: true });
      if (first.status === "err")
        throw authFailed(`the server refused AUTH XOAUTH2: -ERR ${first.text}`, first.text);
      if (first.status === "ok")
        throw this.fail(invalidResponse("the server answered +OK to AUTH XOAUTH2 before any credentials"));
      const answer = await this.exchange(encodeXOAuth2(user, accessToken), {
        label: "AUTH XOAUTH2 (credentials)",
        continuation: true,
      });
      if (answer.status === "ok") return;
      if (answer.status === "err")
        throw authFailed(`AUTH XOAUTH2 as ${user} failed: -ERR ${answer.text}`, answer.text);
      // A challenge: say "no more" with an empty line, then read the verdict.
      const challenge = decodeSaslChallenge(answer.text);
      const final = await this.exchange("", { label: "AUTH XOAUTH2 (empty answer to the challenge)" });
      if (final.status === "ok") return;
      const status = challenge?.status === undefined ? undefined : String(challenge.status);
      const scope = typeof challenge?.scope === "string" ? challenge.scope : undefined;
      throw new M365MailError(
        "AUTH_FAILED",
        `AUTH XOAUTH2 as ${user} failed: the server challenged the token` +
          (status ? ` (status ${status}${scope ? `, scope "${scope}"` : ""})` : "") +
          ` and then answered -ERR ${final.text}`,
        { source: SOURCE, ...(status ? { serverCode: status } : {}) },
      );
    });
  }

  /** `STAT`: message count and total size. */
  async stat(): Promise<Pop3Stat> {
    const text = await this.simple("STAT", false);
    const [count, size] = numbers(text, 2, "STAT");
    return { count: count!, size: size! };
  }

  /** `LIST`: every message's number and size. */
  list(): Promise<Pop3ListEntry[]>;
  /** `LIST n`: one message's size. */
  list(messageNumber: number): Promise<Pop3ListEntry>;
  async list(messageNumber?: number): Promise<Pop3ListEntry[] | Pop3ListEntry> {
    if (messageNumber !== undefined) {
      const [number, size] = numbers(
        await this.simple(`LIST ${checkNumber(messageNumber)}`, true),
        2,
        "LIST",
      );
      return { number: number!, size: size! };
    }
    return lines(await this.multi("LIST", false)).map((line) => {
      const [number, size] = numbers(line, 2, "LIST");
      return { number: number!, size: size! };
    });
  }

  /** `UIDL`: every message's unique id. */
  uidl(): Promise<Pop3UidlEntry[]>;
  /** `UIDL n`: one message's unique id. */
  uidl(messageNumber: number): Promise<Pop3UidlEntry>;
  async uidl(messageNumber?: number): Promise<Pop3UidlEntry[] | Pop3UidlEntry> {
    if (messageNumber !== undefined) {
      return parseUidl(await this.simple(`UIDL ${checkNumber(messageNumber)}`, true));
    }
    return lines(await this.multi("UIDL", false)).map(parseUidl);
  }

  /** `RETR n` into a Buffer: the message exactly as stored (dot-unstuffed, CRLF line ends). */
  async retr(messageNumber: number, options: Pop3RetrieveOptions = {}): Promise<Buffer> {
    checkNumber(messageNumber);
    if (options.maxBytes !== undefined) await this.checkSize(messageNumber, options.maxBytes);
    return this.multi(`RETR ${messageNumber}`, true, options.maxBytes);
  }

  /**
   * `RETR n` as a stream. The connection follows the stream's pace (backpressure). Destroying the stream
   * before its end closes the connection, since POP3 cannot stop a RETR half-way.
   */
  retrStream(messageNumber: number, options: Pop3RetrieveOptions = {}): Readable {
    checkNumber(messageNumber);
    let finished = false;
    const stream = new Readable({
      read: () => this.resume(),
      destroy: (error, callback) => {
        if (!finished) {
          this.destroy(
            new M365MailError("ABORTED", `the RETR ${messageNumber} stream was destroyed before its end`, {
              source: SOURCE,
              cause: error ?? undefined,
            }),
          );
        }
        callback(error);
      },
    });
    this.exclusive(async () => {
      if (options.maxBytes !== undefined) await this.checkSize(messageNumber, options.maxBytes, true);
      const reply = await this.exchange(`RETR ${messageNumber}`, {
        multiline: true,
        maxBytes: options.maxBytes,
        sink: (chunk) => {
          if (!stream.push(chunk)) this.pause();
        },
      });
      if (reply.status !== "ok") throw commandError(`RETR ${messageNumber}`, reply, true);
    }).then(
      () => {
        finished = true;
        stream.push(null);
      },
      (error: Error) => {
        finished = true;
        stream.destroy(error);
      },
    );
    return stream;
  }

  /** `TOP n lines`: the headers, a blank line and the first `lines` lines of the body. */
  async top(messageNumber: number, bodyLines = 0): Promise<Buffer> {
    checkNumber(messageNumber);
    if (!Number.isInteger(bodyLines) || bodyLines < 0) {
      throw new M365MailError("CONFIG_INVALID", `TOP needs a line count >= 0, got ${bodyLines}`, {
        source: SOURCE,
      });
    }
    return this.multi(`TOP ${messageNumber} ${bodyLines}`, true);
  }

  /** `DELE n`: marks a message deleted; the deletion happens only when `quit()` succeeds. */
  async dele(messageNumber: number): Promise<void> {
    await this.simple(`DELE ${checkNumber(messageNumber)}`, true);
  }

  /** `RSET`: unmarks every message deleted in this session. */
  async rset(): Promise<void> {
    await this.simple("RSET", false);
  }

  async noop(): Promise<void> {
    await this.simple("NOOP", false);
  }

  /**
   * `QUIT`: commits deletions and closes the connection. Rejects when the server refuses (then the
   * deletions did not happen) — RFC 1939 §6.
   */
  async quit(): Promise<void> {
    await this.exclusive(async () => {
      const reply = await this.exchange("QUIT");
      this.end();
      if (reply.status !== "ok") {
        throw new M365MailError(
          "SERVER_ERROR",
          `QUIT failed, messages marked deleted were kept: -ERR ${reply.text}`,
          {
            source: SOURCE,
            hint: "Retry the deletion in a new session.",
          },
        );
      }
    });
  }

  /** Sends QUIT when the connection is still usable, then closes it. Never rejects. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.quit();
    } catch {
      this.destroy();
    }
  }

  /** Closes the connection at once; pending and later commands fail with `error` (default CONNECTION_FAILED). */
  destroy(error?: M365MailError): void {
    if (this.closedError) return;
    this.closedError =
      error ??
      new M365MailError("CONNECTION_FAILED", "the POP3 connection was closed by the client", {
        source: SOURCE,
      });
    this.clearTimer();
    this.detachSignal();
    this.socket?.destroy();
    this.reader.fail(this.closedError);
    if (error) this.log.debug(`connection destroyed: ${error.message}`);
  }

  // --- internals -------------------------------------------------------------------------------

  private end(): void {
    this.closedError = new M365MailError("CONNECTION_FAILED", "the POP3 session has ended (QUIT)", {
      source: SOURCE,
    });
    this.clearTimer();
    this.detachSignal();
    const socket = this.socket;
    if (socket) {
      this.detach(socket);
      socket.on("error", () => {});
      socket.end();
      // The server closes after +OK to QUIT; do not wait for it forever.
      const timer = setTimeout(() => socket.destroy(), 2000).unref();
      socket.once("close", () => clearTimeout(timer));
    }
  }

  private async checkSize(messageNumber: number, maxBytes: number, unlocked = false): Promise<void> {
    const entry = unlocked ? await this.listUnlocked(messageNumber) : await this.list(messageNumber);
    if (entry.size > maxBytes) {
      throw new M365MailError(
        "MESSAGE_TOO_LARGE",
        `message ${messageNumber} is ${entry.size} bytes, over the limit of ${maxBytes}; it was not downloaded`,
        { source: SOURCE, hint: "Raise `maxMessageBytes` (default 50 MB), or read the message over Graph." },
      );
    }
  }

  private async listUnlocked(messageNumber: number): Promise<Pop3ListEntry> {
    const label = `LIST ${messageNumber}`;
    const reply = await this.exchange(label);
    if (reply.status !== "ok") throw commandError(label, reply, true);
    const [number, size] = numbers(reply.text, 2, "LIST");
    return { number: number!, size: size! };
  }

  private simple(command: string, onMessage: boolean): Promise<string> {
    return this.exclusive(async () => {
      const reply = await this.exchange(command);
      if (reply.status !== "ok") throw commandError(command, reply, onMessage);
      return reply.text;
    });
  }

  private multi(command: string, onMessage: boolean, maxBytes?: number): Promise<Buffer> {
    return this.exclusive(async () => {
      const reply = await this.exchange(command, { multiline: true, maxBytes });
      if (reply.status !== "ok") throw commandError(command, reply, onMessage);
      return reply.data ?? Buffer.alloc(0);
    });
  }

  /** Sends one line (none for the greeting) and waits for its answer. Callers hold `exclusive`. */
  private exchange(line: string | undefined, options: ExchangeOptions = {}): Promise<Pop3Answer> {
    const label = options.label ?? line ?? "";
    if (this.closedError) return Promise.reject(this.closedFor(label));
    const { label: _label, ...read } = options;
    const answer = this.reader.expect(label, read);
    if (line !== undefined) {
      this.log.debug(`C: ${label}`);
      this.socket!.write(`${line}\r\n`);
    }
    this.armTimer();
    return answer;
  }

  private closedFor(label: string): M365MailError {
    const cause = this.closedError!;
    if (cause.code === "ABORTED") return cause;
    return new M365MailError("CONNECTION_FAILED", `cannot send ${label}: the POP3 connection is closed`, {
      source: SOURCE,
      cause,
      hint: "Open a new connection.",
    });
  }

  private fail(error: M365MailError): M365MailError {
    this.destroy(error);
    return error;
  }

  private onData(chunk: Buffer): void {
    if (this.closedError) return;
    if (this.reader.waiting !== undefined) this.armTimer();
    this.reader.push(chunk);
  }

  private pause(): void {
    if (this.paused || !this.socket) return;
    this.paused = true;
    this.socket.pause();
    // The reader is slow, not the server: stop the idle clock while paused.
    this.clearTimer();
  }

  private resume(): void {
    if (!this.paused || !this.socket) return;
    this.paused = false;
    this.socket.resume();
    if (this.reader.waiting !== undefined) this.armTimer();
  }

  private armTimer(): void {
    this.clearTimer();
    if (this.paused) return;
    const label = this.reader.waiting ?? "the server";
    this.timer = setTimeout(() => this.destroy(this.timeoutError(label)), this.timeoutMs);
    this.timer.unref?.();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private timeoutError(label: string): M365MailError {
    return new M365MailError(
      "TIMEOUT",
      `no answer from ${this.host}:${this.port} to ${label} within ${this.timeoutMs} ms; connection closed`,
      {
        source: SOURCE,
        hint: "Retry; raise `timeoutMs` on slow links, and check that `host` and `port` are a POP3 server.",
      },
    );
  }
}

/** Connects, reads the greeting and (for `tls: "starttls"`) upgrades with STLS. Authenticate next. */
export async function connectPop3(options: ConnectPop3Options): Promise<Pop3Client> {
  if (!options.host) {
    throw new M365MailError("CONFIG_INVALID", "connectPop3 needs `host`", {
      source: SOURCE,
      hint: "Set host, e.g. outlook.office365.com.",
    });
  }
  if (options.tls !== undefined && options.tls !== "implicit" && options.tls !== "starttls") {
    throw new M365MailError(
      "CONFIG_INVALID",
      `tls must be "implicit" or "starttls", got "${String(options.tls)}"`,
      {
        source: SOURCE,
        hint: 'Use tls: "implicit" (port 995, Exchange Online) or "starttls" (port 110 with STLS).',
      },
    );
  }
  const client = new Pop3Client(options);
  await client.open();
  return client;
}

function authFailed(message: string, serverText: string): M365MailError {
  const code = /^\[([A-Za-z0-9/-]+)\]/.exec(serverText)?.[1];
  return new M365MailError("AUTH_FAILED", message, { source: SOURCE, ...(code ? { serverCode: code } : {}) });
}

function checkNumber(messageNumber: number): number {
  if (!Number.isInteger(messageNumber) || messageNumber < 1) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `a POP3 message number is an integer >= 1, got ${messageNumber}`,
      {
        source: SOURCE,
      },
    );
  }
  return messageNumber;
}

function lines(data: Buffer): string[] {
  return data
    .toString("utf8")
    .split("\r\n")
    .filter((line) => line.length > 0);
}

function numbers(text: string, count: number, command: string): number[] {
  const parts = text.trim().split(/\s+/).slice(0, count).map(Number);
  if (parts.length < count || parts.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw invalidResponse(`cannot read the answer to ${command}: "${text.slice(0, 100)}"`);
  }
  return parts;
}

function parseUidl(text: string): Pop3UidlEntry {
  const match = /^\s*(\d+)\s+(\S+)/.exec(text);
  if (!match) throw invalidResponse(`cannot read the answer to UIDL: "${text.slice(0, 100)}"`);
  return { number: Number(match[1]), uid: match[2]! };
}
