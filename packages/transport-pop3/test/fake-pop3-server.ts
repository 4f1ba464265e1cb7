/**
 * A tiny scripted POP3 server for protocol tests: 127.0.0.1, a random port, TLS from a throw-away
 * self-signed certificate. It speaks enough RFC 1939/2449/2595/5034 to exercise the client, and every
 * answer can be overridden per command to play a misbehaving server.
 */
import { generateKeyPairSync } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { decodeXOAuth2 } from "@m365-mail/core";
import forge from "node-forge";

export interface FakeMessage {
  uid: string;
  /** RFC 5322 source with CRLF line ends; the server dot-stuffs it on the wire. */
  source: Buffer;
  /** Size announced by LIST; defaults to the real size (set it lower to play a lying server). */
  listSize?: number;
}

/** An answer to send instead, "silent" (never answer), "drop" (close), or some bytes and then a reset. */
export type Override = string | Buffer | "silent" | "drop" | { send: Buffer; thenDrop: true };

export type AuthDecision = "ok" | "err" | "challenge";

export interface SessionInfo {
  readonly id: number;
  /** Every line the client sent, in order (the XOAUTH2 string included, for assertions). */
  readonly lines: string[];
  user?: string;
  token?: string;
  readonly secure: () => boolean;
}

export interface FakePop3Options {
  messages?: FakeMessage[];
  /** "implicit": TLS on connect; "starttls": plain, STLS offered. */
  tls?: "implicit" | "starttls";
  /** Decides AUTH XOAUTH2; default accepts the token "good-token". */
  authorize?: (user: string, token: string, session: SessionInfo) => AuthDecision;
  /**
   * Overrides a command. Return a string/Buffer to send instead of the normal answer, "silent" to never
   * answer, "drop" to close the connection, or undefined to answer normally.
   */
  override?: (command: string, args: string[], session: SessionInfo) => Override | undefined;
  /** Send the greeting? (false plays a server that accepts TCP and says nothing). */
  greet?: boolean;
  /** Split every answer into pieces of this many bytes, each written separately. */
  chunkSize?: number;
  /** Text of -ERR for a refused AUTH. */
  authFailureText?: string;
}

export interface FakePop3Server {
  readonly port: number;
  /** PEM certificate the client must trust (`ca`). */
  readonly ca: string;
  readonly sessions: SessionInfo[];
  readonly messages: FakeMessage[];
  /** Sessions that had a command arrive before the answer to the previous one was written. */
  pipelined: number;
  close(): Promise<void>;
}

let cached: { key: string; cert: string } | undefined;

/** A self-signed certificate for 127.0.0.1 and localhost (made once per test file). */
export function testCertificate(): { key: string; cert: string } {
  if (cached) return cached;
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString());
  cert.serialNumber = "01";
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: "commonName", value: "fake-pop3.test" }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: "basicConstraints", cA: true },
    { name: "keyUsage", keyCertSign: true, digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        { type: 7, ip: "127.0.0.1" },
        { type: 2, value: "localhost" },
      ],
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  cached = { key: keyPem, cert: forge.pki.certificateToPem(cert) };
  return cached;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function stuff(source: Buffer): Buffer {
  const text = source.toString("latin1");
  const body = text.endsWith("\r\n") ? text : `${text}\r\n`;
  const stuffed = body.replace(/(^|\r\n)\./g, "$1..");
  return Buffer.from(`${stuffed}.\r\n`, "latin1");
}

export async function startFakePop3(options: FakePop3Options = {}): Promise<FakePop3Server> {
  const { key, cert } = testCertificate();
  const messages = options.messages ?? [];
  const sessions: SessionInfo[] = [];
  const sockets = new Set<net.Socket>();
  const mode = options.tls ?? "implicit";
  const authorize =
    options.authorize ?? ((_user: string, token: string) => (token === "good-token" ? "ok" : "err"));
  const state = { pipelined: 0 };
  let locked = false;

  const handle = (raw: net.Socket) => {
    sockets.add(raw);
    raw.on("close", () => sockets.delete(raw));
    raw.on("error", () => {});
    let socket: net.Socket = raw;
    let secure = mode === "implicit";
    const session: SessionInfo = { id: sessions.length + 1, lines: [], secure: () => secure };
    sessions.push(session);
    let buffer = "";
    let busy = false;
    let authStep: "none" | "await-credentials" | "await-empty" = "none";
    let authenticated = false;
    let holdsLock = false;
    const deleted = new Set<number>();
    const queue: string[] = [];

    const write = async (data: string | Buffer) => {
      const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
      if (!options.chunkSize) {
        socket.write(bytes);
        return;
      }
      for (let i = 0; i < bytes.length; i += options.chunkSize) {
        if (i > 0) await sleep(1);
        socket.write(bytes.subarray(i, i + options.chunkSize));
      }
    };
    const visible = () => messages.map((m, i) => ({ m, n: i + 1 })).filter(({ n }) => !deleted.has(n));
    const message = (arg: string | undefined) => {
      const n = Number(arg);
      const m = messages[n - 1];
      return m && !deleted.has(n) ? { m, n } : undefined;
    };

    const answer = async (line: string): Promise<void> => {
      session.lines.push(line);
      if (authStep === "await-credentials") {
        const decoded = decodeXOAuth2(line);
        session.user = decoded?.user;
        session.token = decoded?.token;
        const decision = decoded ? authorize(decoded.user, decoded.token, session) : "err";
        if (decision === "ok") {
          if (locked) {
            authStep = "none";
            return write("-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n");
          }
          locked = true;
          holdsLock = true;
          authenticated = true;
          authStep = "none";
          return write("+OK User successfully authenticated.\r\n");
        }
        if (decision === "challenge") {
          authStep = "await-empty";
          const json = JSON.stringify({
            status: "401",
            schemes: "bearer",
            scope: "https://outlook.office.com/POP.AccessAsUser.All",
          });
          return write(`+ ${Buffer.from(json).toString("base64")}\r\n`);
        }
        authStep = "none";
        return write(
          `-ERR ${options.authFailureText ?? "Authentication failure: unknown user name or bad password."}\r\n`,
        );
      }
      if (authStep === "await-empty") {
        authStep = "none";
        if (line !== "") return write("-ERR Protocol error: expected an empty line after the challenge\r\n");
        return write(
          `-ERR ${options.authFailureText ?? "Authentication failure: unknown user name or bad password."}\r\n`,
        );
      }
      const [rawCommand = "", ...args] = line.split(" ");
      const command = rawCommand.toUpperCase();
      const override = options.override?.(command, args, session);
      if (override === "silent") return;
      if (override === "drop") {
        socket.destroy();
        return;
      }
      if (typeof override === "object" && "thenDrop" in override) {
        await write(override.send);
        await sleep(20);
        socket.destroy();
        return;
      }
      if (override !== undefined) return write(override);
      switch (command) {
        case "CAPA":
          return write(
            `+OK\r\nTOP\r\nUIDL\r\nSASL XOAUTH2\r\n${mode === "starttls" && !secure ? "STLS\r\n" : ""}RESP-CODES\r\n.\r\n`,
          );
        case "STLS": {
          if (secure) return write("-ERR already using TLS\r\n");
          await write("+OK Begin TLS negotiation\r\n");
          const upgraded = new tls.TLSSocket(raw, { isServer: true, key, cert });
          upgraded.on("error", () => {});
          upgraded.on("data", onData);
          raw.removeListener("data", onData);
          socket = upgraded;
          secure = true;
          return;
        }
        case "AUTH":
          if (args[0]?.toUpperCase() !== "XOAUTH2") return write("-ERR Unsupported mechanism\r\n");
          if (args[1])
            return write("-ERR Protocol error. Connection is closed. 10\r\n").then(() => void socket.end());
          authStep = "await-credentials";
          return write("+ \r\n");
        case "QUIT":
          if (authenticated) {
            for (const n of [...deleted].sort((a, b) => b - a)) messages.splice(n - 1, 1);
          }
          if (holdsLock) locked = false;
          holdsLock = false;
          await write("+OK Microsoft Exchange Server POP3 server signing off.\r\n");
          socket.end();
          return;
        case "NOOP":
          return write("+OK\r\n");
      }
      if (!authenticated) return write("-ERR Command is not valid in this state.\r\n");
      switch (command) {
        case "STAT": {
          const v = visible();
          return write(`+OK ${v.length} ${v.reduce((sum, { m }) => sum + m.source.length, 0)}\r\n`);
        }
        case "LIST": {
          if (args[0]) {
            const found = message(args[0]);
            return write(
              found
                ? `+OK ${found.n} ${found.m.listSize ?? found.m.source.length}\r\n`
                : "-ERR No such message\r\n",
            );
          }
          const body = visible()
            .map(({ m, n }) => `${n} ${m.listSize ?? m.source.length}\r\n`)
            .join("");
          return write(`+OK\r\n${body}.\r\n`);
        }
        case "UIDL": {
          if (args[0]) {
            const found = message(args[0]);
            return write(found ? `+OK ${found.n} ${found.m.uid}\r\n` : "-ERR No such message\r\n");
          }
          return write(
            `+OK\r\n${visible()
              .map(({ m, n }) => `${n} ${m.uid}\r\n`)
              .join("")}.\r\n`,
          );
        }
        case "RETR": {
          const found = message(args[0]);
          if (!found) return write("-ERR No such message\r\n");
          return write(Buffer.concat([Buffer.from("+OK\r\n"), stuff(found.m.source)]));
        }
        case "TOP": {
          const found = message(args[0]);
          if (!found) return write("-ERR No such message\r\n");
          const text = found.m.source.toString("latin1");
          const split = text.indexOf("\r\n\r\n");
          const head = split < 0 ? text : text.slice(0, split + 4);
          const bodyLines = Number(args[1] ?? 0);
          const body =
            split < 0
              ? ""
              : text
                  .slice(split + 4)
                  .split("\r\n")
                  .slice(0, bodyLines)
                  .join("\r\n");
          return write(Buffer.concat([Buffer.from("+OK\r\n"), stuff(Buffer.from(head + body, "latin1"))]));
        }
        case "DELE": {
          const found = message(args[0]);
          if (!found) return write("-ERR No such message\r\n");
          deleted.add(found.n);
          return write("+OK\r\n");
        }
        case "RSET":
          deleted.clear();
          return write("+OK\r\n");
        default:
          return write("-ERR Unknown command\r\n");
      }
    };

    const pump = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0) {
        const line = queue.shift()!;
        await answer(line);
      }
      busy = false;
    };

    function onData(chunk: Buffer) {
      buffer += chunk.toString("latin1");
      let end = buffer.indexOf("\r\n");
      while (end >= 0) {
        // A command while an answer is still being written: the client did not wait for it.
        if (busy) state.pipelined++;
        queue.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\r\n");
      }
      void pump();
    }

    raw.on("close", () => {
      if (holdsLock) locked = false;
    });
    socket.on("data", onData);
    if (options.greet !== false) {
      void write("+OK The Microsoft Exchange POP3 service is ready. [RkFLRQ==]\r\n");
    }
  };

  const server =
    mode === "implicit"
      ? tls.createServer({ key, cert }, (socket) => handle(socket))
      : net.createServer((socket) => handle(socket));
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    ca: cert,
    sessions,
    messages,
    get pipelined() {
      return state.pipelined;
    },
    set pipelined(value: number) {
      state.pipelined = value;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A message source with CRLF line ends. */
export function mime(lines: string[]): Buffer {
  return Buffer.from(`${lines.join("\r\n")}\r\n`, "utf8");
}
