import { connect as netConnect, type Socket } from "node:net";
import { hostname } from "node:os";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { encodeXOAuth2 } from "@m365-mail/core";
import type { SmtpLikeError } from "./smtp-errors.js";

export interface ProbeOptions {
  host: string;
  port: number;
  ca?: string | Buffer | (string | Buffer)[];
  timeoutMs: number;
  signal?: AbortSignal;
}

const fail = (message: string, code: string, response?: string, command?: string): SmtpLikeError => {
  const error = new Error(response ? `${message}: ${response}` : message) as SmtpLikeError;
  error.code = code;
  if (response) {
    error.response = response;
    error.responseCode = Number(response.slice(0, 3));
  }
  if (command) error.command = command;
  return error;
};

/**
 * A few SMTP commands on one connection, for `verify()`: nodemailer's verify stops after AUTH, and
 * Exchange can accept AUTH and refuse the next command, so we need to send one more ourselves.
 */
export class SmtpProbe {
  private socket: Socket | TLSSocket;
  private buffer = "";
  private waiting: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;

  private constructor(
    socket: Socket,
    private readonly options: ProbeOptions,
  ) {
    this.socket = socket;
    this.listen();
  }

  /** Connects, reads the greeting, EHLO, STARTTLS, EHLO again. */
  static async open(options: ProbeOptions): Promise<SmtpProbe> {
    const socket = netConnect({ host: options.host, port: options.port });
    const probe = new SmtpProbe(socket, options);
    try {
      await probe.expect(undefined, /^220/, "ECONNECTION", "CONN");
      const ehlo = await probe.expect(`EHLO ${clientName()}`, /^250/, "EPROTOCOL", "EHLO");
      if (!/STARTTLS/i.test(ehlo))
        throw fail("the server does not offer STARTTLS", "ETLS", undefined, "EHLO");
      await probe.expect("STARTTLS", /^220/, "ETLS", "STARTTLS");
      await probe.upgrade();
      await probe.expect(`EHLO ${clientName()}`, /^250/, "EPROTOCOL", "EHLO");
      return probe;
    } catch (error) {
      probe.close();
      throw error;
    }
  }

  /** `AUTH XOAUTH2 <initial response>`; a 334 challenge is answered with an empty line, as RFC 7628 asks. */
  async auth(user: string, token: string): Promise<void> {
    // The logged form never holds the token.
    let reply = await this.send(`AUTH XOAUTH2 ${encodeXOAuth2(user, token)}`);
    if (reply.startsWith("334")) reply = await this.send("");
    if (!reply.startsWith("235")) throw fail("Invalid login", "EAUTH", reply, "AUTH XOAUTH2");
  }

  async expect(line: string | undefined, ok: RegExp, code: string, command: string): Promise<string> {
    const reply = line === undefined ? await this.read() : await this.send(line);
    if (!ok.test(reply)) throw fail(`unexpected reply to ${command}`, code, reply || undefined, command);
    return reply;
  }

  close(): void {
    if (!this.ended) {
      this.ended = true;
      this.socket.destroy();
    }
  }

  async quit(): Promise<void> {
    try {
      this.socket.write("QUIT\r\n");
      await this.read();
    } catch {
      // The answer to QUIT does not matter.
    }
    this.close();
  }

  private listen(): void {
    const timer = () => {
      this.socket.setTimeout(this.options.timeoutMs, () => {
        this.failure = fail(`no answer from ${this.options.host}:${this.options.port}`, "ETIMEDOUT");
        this.wake();
        this.close();
      });
    };
    timer();
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      this.wake();
    });
    this.socket.on("error", (error: NodeJS.ErrnoException) => {
      const wrapped = fail(error.message, "ECONNECTION") as SmtpLikeError;
      wrapped.originalCode = error.code;
      this.failure = wrapped;
      this.wake();
    });
    this.socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
    this.options.signal?.addEventListener(
      "abort",
      () => {
        this.failure = Object.assign(new Error("aborted"), { name: "AbortError" });
        this.close();
        this.wake();
      },
      { once: true },
    );
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  private async upgrade(): Promise<void> {
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("close");
    this.socket.setTimeout(0);
    const secure = tlsConnect({
      socket: this.socket as Socket,
      servername: this.options.host.match(/^[\d.:]+$/) ? undefined : this.options.host,
      ca: this.options.ca,
    });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", (error: NodeJS.ErrnoException) => {
        const wrapped = fail(error.message, "ETLS") as SmtpLikeError;
        wrapped.originalCode = error.code;
        reject(wrapped);
      });
    });
    this.socket = secure;
    this.listen();
  }

  private send(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  private async read(): Promise<string> {
    for (;;) {
      const lines = this.buffer.split("\r\n");
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3}( |$)/.test(lines[i]!)) {
          this.buffer = lines.slice(i + 1).join("\r\n");
          return lines.slice(0, i + 1).join("\r\n");
        }
      }
      if (this.failure) throw this.failure;
      if (this.ended)
        throw fail(`${this.options.host}:${this.options.port} closed the connection`, "ECONNECTION");
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
    }
  }
}

function clientName(): string {
  const name = hostname();
  return /^[A-Za-z0-9.-]+$/.test(name) ? name : "localhost";
}
