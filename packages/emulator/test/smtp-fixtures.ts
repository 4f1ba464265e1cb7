/**
 * Helpers for the SMTP part's tests: an in-memory mail sink, a line-level SMTP client that shows every
 * reply exactly as sent, and a small message builder.
 */
import { randomBytes } from "node:crypto";
import type { SmtpDeliveryFolder, SmtpMailSink } from "../src/smtp/smtp-part.js";

export interface SunkMessage {
  mailbox: string;
  folder: SmtpDeliveryFolder;
  raw: string;
  seen: boolean;
}

/** Records deliveries in memory. */
export function memorySink(): SmtpMailSink & {
  messages: SunkMessage[];
  in(mailbox: string, folder: SmtpDeliveryFolder): SunkMessage[];
  clear(): void;
} {
  const messages: SunkMessage[] = [];
  return {
    messages,
    async deliver(mailbox, folder, raw, options) {
      messages.push({ mailbox, folder, raw: raw.toString("utf8"), seen: options?.seen ?? false });
    },
    clear: () => void messages.splice(0),
    in: (mailbox, folder) => messages.filter((m) => m.mailbox === mailbox && m.folder === folder),
  };
}

/** A line-level SMTP client: every reply exactly as the server sent it. */
export class RawSmtpClient {
  private socket: import("node:net").Socket | import("node:tls").TLSSocket;
  private buffer = "";
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: import("node:net").Socket) {
    this.socket = socket;
    this.attach();
  }

  static async connect(port: number): Promise<{ client: RawSmtpClient; greeting: string }> {
    const net = await import("node:net");
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    const client = new RawSmtpClient(socket);
    return { client, greeting: await client.read() };
  }

  private attach(): void {
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      this.wake();
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on("error", () => {});
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Reads one complete (possibly multi-line) reply; "" when the server closed the connection. */
  async read(): Promise<string> {
    for (;;) {
      const lines = this.buffer.split("\r\n");
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3}( |$)/.test(lines[i]!)) {
          const reply = lines.slice(0, i + 1).join("\r\n");
          this.buffer = lines.slice(i + 1).join("\r\n");
          return reply;
        }
      }
      if (this.closed) return "";
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  async startTls(ca: string): Promise<string> {
    const reply = await this.command("STARTTLS");
    const tls = await import("node:tls");
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("close");
    const secure = tls.connect({
      socket: this.socket as import("node:net").Socket,
      ca,
      servername: "localhost",
    });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    this.socket = secure;
    this.attach();
    return reply;
  }

  /** EHLO, STARTTLS, EHLO, AUTH XOAUTH2 with one line (as Exchange clients do); returns the AUTH reply. */
  static async signIn(
    port: number,
    ca: string,
    user: string,
    token: string,
  ): Promise<{ client: RawSmtpClient; auth: string }> {
    const { client } = await RawSmtpClient.connect(port);
    await client.command("EHLO client.test");
    await client.startTls(ca);
    await client.command("EHLO client.test");
    const b64 = Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString("base64");
    return { client, auth: await client.command(`AUTH XOAUTH2 ${b64}`) };
  }

  /** MAIL, RCPT..., DATA, body; returns the reply to the end of DATA (or the first failure). */
  async sendMail(from: string, to: string[], body: string): Promise<string> {
    let reply = await this.command(`MAIL FROM:<${from}>`);
    if (!reply.startsWith("250")) return reply;
    for (const rcpt of to) {
      reply = await this.command(`RCPT TO:<${rcpt}>`);
      if (!reply.startsWith("250")) return reply;
    }
    reply = await this.command("DATA");
    if (!reply.startsWith("354")) return reply;
    const data = body.replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
    return this.command(`${data}\r\n.`);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function message(
  from: string,
  to: string,
  subject: string,
  messageId = `<${randomBytes(8).toString("hex")}@test>`,
): string {
  return [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    "",
    `Body of ${subject}`,
  ].join("\r\n");
}
