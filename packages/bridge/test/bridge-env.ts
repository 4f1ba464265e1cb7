import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "@m365-mail/core";
import {
  DEMO_PASSWORD,
  graphPart,
  smtpPart,
  startTestEmulator,
  type TestEmulator,
} from "@m365-mail/emulator";
import { needs } from "@m365-mail/test-helpers";
import { type ParsedMail, simpleParser } from "mailparser";
import {
  type Bridge,
  type BridgeConfigInput,
  hashSecret,
  runBridgeCommand,
  startBridge,
  validateBridgeConfig,
} from "../src/index.js";

export { DEMO_PASSWORD };

/**
 * A mapped account's credentials: the device logs in as `login` with `secret` (stored as its scrypt
 * hash); the bridge signs in as `username` with the password it reads from the variable `passwordEnv`
 * (or the file `passwordFile`).
 */
export async function mappedCredentials(o: {
  login: string;
  secret: string;
  username: string;
  passwordEnv?: string;
  passwordFile?: string;
}) {
  return {
    mode: "mapped" as const,
    login: o.login,
    secretHash: await hashSecret(o.secret),
    username: o.username,
    ...(o.passwordFile
      ? { passwordFile: o.passwordFile }
      : { passwordEnv: o.passwordEnv ?? "SUPPORT_PASSWORD" }),
  };
}

/**
 * The account of a device (a scanner, an ERP) that acts as support@contoso.com: named after its `login`,
 * mapped credentials, `answer` "spool" unless told.
 */
export async function deviceAccount(o: {
  login: string;
  secret: string;
  passwordFile?: string;
  passwordEnv?: string;
  answer?: "sync" | "spool";
  delivery?: "graph" | "smtp" | "auto";
}) {
  return {
    name: o.login,
    answer: o.answer ?? "spool",
    ...(o.delivery ? { delivery: o.delivery } : {}),
    credentials: await mappedCredentials({
      login: o.login,
      secret: o.secret,
      username: "support@contoso.com",
      ...(o.passwordFile ? { passwordFile: o.passwordFile } : {}),
      ...(o.passwordEnv ? { passwordEnv: o.passwordEnv } : {}),
    }),
  };
}

/** A 0600 file holding the emulator's demo password, as a mapped account's `passwordFile`. */
export async function demoPasswordFile(emulator: TestEmulator, name: string): Promise<string> {
  const path = join(emulator.dataDir, name);
  await writeFile(path, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
  return path;
}

/** The emulator with Graph and SMTP (no Dovecot: the SMTP front door never needs it). */
export function startSmtpEmulator(): Promise<TestEmulator> {
  return startTestEmulator({ prefix: "m365-bridge-test-", parts: [graphPart(), smtpPart()] });
}

/** Every log line the bridge wrote, to assert on (and to prove no secret is in any of them). */
export function collectingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string, data?: Record<string, unknown>) => {
    lines.push(`${level} ${message}${data ? ` ${JSON.stringify(data)}` : ""}`);
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A bridge config pointed at the emulator, the way `m365-mail emulator --write-env` output would. */
export function configFor(emulator: TestEmulator, input: BridgeConfigInput) {
  return validateBridgeConfig({ dataDir: join(emulator.dataDir, "bridge"), ...input }, emulator.env());
}

export async function startTestBridge(
  emulator: TestEmulator,
  input: BridgeConfigInput,
  logger: Logger = collectingLogger(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<Bridge> {
  const bridge = await startBridge(configFor(emulator, input), { logger, env });
  // The stored passwords' sign-ins are done: what a test counts at Entra is its own doing.
  await bridge.storedPasswordSignIns();
  return bridge;
}

export function smtpPort(bridge: Bridge, index = 0): number {
  return bridge.addresses.filter((a) => a.protocol === "smtp")[index]!.port;
}

/** The messages of one folder in the emulator's store, parsed, oldest first. */
export async function mailbox(
  emulator: TestEmulator,
  upn: string,
  folder = "inbox",
): Promise<(ParsedMail & { raw: Buffer })[]> {
  const list = await emulator.store.list(upn, folder).catch(() => []);
  const out: (ParsedMail & { raw: Buffer })[] = [];
  for (const m of [...list].reverse()) {
    const { raw } = await emulator.store.read(upn, m.id);
    out.push(Object.assign(await simpleParser(raw), { raw }));
  }
  return out;
}

/** Polls `check` until it returns a value (not undefined/false) or the time is up. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`waitFor: gave up after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with a deadline; secrets go through `env` or stdin, never the command line. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // A program that exits without reading stdin must not fail the test with EPIPE.
    child.stdin.on("error", () => undefined);
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/**
 * Python's smtplib, unmodified: logs in with the given mechanism and sends `message` (stdin). Prints
 * `OK` or `ERR <code> <text>`.
 */
export function pythonSmtp(options: {
  port: number;
  mechanism?: "PLAIN" | "LOGIN";
  username?: string;
  password?: string;
  from: string;
  to: readonly string[];
  message: string | Buffer;
  tls?: "starttls" | "implicit";
  sourceAddress?: string;
}): Promise<ProcessResult> {
  const script = `
import os, smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
src = (os.environ["SRC"], 0) if os.environ.get("SRC") else None
try:
    if os.environ.get("TLS") == "implicit":
        s = smtplib.SMTP_SSL("127.0.0.1", int(os.environ["PORT"]), timeout=60, context=ctx, source_address=src)
    else:
        s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=60, source_address=src)
    s.ehlo()
    if os.environ.get("TLS") == "starttls":
        s.starttls(context=ctx)
        s.ehlo()
    if os.environ.get("USER_NAME"):
        s.user, s.password = os.environ["USER_NAME"], os.environ["USER_PASSWORD"]
        mech = os.environ["MECH"]
        s.auth(mech, s.auth_plain if mech == "PLAIN" else s.auth_login, initial_response_ok=(mech == "PLAIN"))
    s.sendmail(os.environ["FROM"], os.environ["TO"].split(","), sys.stdin.buffer.read())
    s.quit()
    print("OK")
except smtplib.SMTPResponseException as e:
    print("ERR", e.smtp_code, e.smtp_error.decode(errors="replace"))
except smtplib.SMTPRecipientsRefused as e:
    code, text = list(e.recipients.values())[0]
    print("ERR", code, text.decode(errors="replace"))
`;
  return run("python3", ["-c", script], {
    env: {
      PORT: String(options.port),
      MECH: options.mechanism ?? "PLAIN",
      USER_NAME: options.username ?? "",
      USER_PASSWORD: options.password ?? "",
      FROM: options.from,
      TO: options.to.join(","),
      TLS: options.tls ?? "",
      SRC: options.sourceAddress ?? "",
    },
    input: options.message,
    timeoutMs: 90_000,
  });
}

/**
 * A webhook receiver on loopback: the JSON bodies it took, in order. It answers each POST with the next of
 * `statuses` (then 204; a body answered 300 or more is not taken), on `port` if given.
 */
export async function startWebhookReceiver(options: { statuses?: number[]; port?: number } = {}): Promise<{
  url: string;
  events: Record<string, unknown>[];
  posts(): number;
  close(): Promise<void>;
}> {
  const events: Record<string, unknown>[] = [];
  let posts = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const status = options.statuses?.[posts++] ?? 204;
      if (status < 300) events.push(JSON.parse(body));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(options.port ?? 0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    events,
    posts: () => posts,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Python's imaplib through a bridge: LOGIN, SELECT INBOX; "OK", or "REFUSED <the server's text>". */
export async function pythonImapLogin(port: number, username: string, password: string): Promise<string> {
  const script = `
import imaplib, os
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
try:
    M.login(os.environ["IMAP_USER"], os.environ["IMAP_PASSWORD"])
    typ, _ = M.select("INBOX")
    print(typ)
    M.logout()
except imaplib.IMAP4.error as e:
    print("REFUSED", e)
`;
  const result = await run("python3", ["-c", script], {
    env: { PORT: String(port), IMAP_USER: username, IMAP_PASSWORD: password },
  });
  return `${result.stdout.trim()}${result.stderr ? ` ${result.stderr.trim()}` : ""}`;
}

/** A small RFC 5322 message. */
export function textMessage(o: {
  from: string;
  to: string;
  subject: string;
  body?: string;
  extraHeaders?: string;
}): string {
  return [
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    `Message-ID: <${Math.random().toString(36).slice(2)}@bridge.test>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    ...(o.extraHeaders ? [o.extraHeaders] : []),
    "",
    o.body ?? "Hello through the bridge.",
    "",
  ].join("\r\n");
}

/** A device logs in as `username` and sends a text message from support@ to alice@ (Python's smtplib). */
export function sendToAlice(o: { port: number; username: string; password: string; subject: string }) {
  return pythonSmtp({
    port: o.port,
    username: o.username,
    password: o.password,
    from: "support@contoso.com",
    to: ["alice@contoso.com"],
    message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: o.subject }),
  });
}

/** sendToAlice for each subject in turn: each one's answer ("OK" when accepted). */
export async function sendEachToAlice(o: {
  port: number;
  username: string;
  password: string;
  subjects: readonly string[];
}): Promise<string[]> {
  const answers: string[] = [];
  for (const subject of o.subjects) answers.push((await sendToAlice({ ...o, subject })).stdout.trim());
  return answers;
}

/** A message with one binary attachment, base64 in MIME. */
export function messageWithAttachment(o: {
  from: string;
  to: string;
  subject: string;
  attachment: Buffer;
  filename: string;
}): string {
  const boundary = `b-${Math.random().toString(36).slice(2)}`;
  const b64 = o.attachment.toString("base64").replace(/.{76}/g, "$&\r\n");
  return [
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    `Message-ID: <${Math.random().toString(36).slice(2)}@bridge.test>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Scan attached.",
    `--${boundary}`,
    `Content-Type: application/octet-stream; name="${o.filename}"`,
    `Content-Disposition: attachment; filename="${o.filename}"`,
    "Content-Transfer-Encoding: base64",
    "",
    b64,
    `--${boundary}--`,
    "",
  ].join("\r\n");
}

/** A hand-driven SMTP connection: `command()` writes a line and resolves with the complete reply. */
export async function smtpDialog(port: number, host = "127.0.0.1") {
  const { connect } = await import("node:net");
  const socket = connect(port, host);
  let buffer = "";
  let waiting: ((reply: string) => void) | undefined;
  const tryReply = () => {
    // A reply ends with a line "NNN text" (no dash after the code).
    const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
    if (m && waiting) {
      const end = m.index + m[0].length;
      const reply = buffer.slice(0, end);
      buffer = buffer.slice(end);
      const w = waiting;
      waiting = undefined;
      w(reply.trim());
    }
  };
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("latin1");
    tryReply();
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SMTP reply; got so far: ${buffer}`)), 30_000);
      waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      tryReply();
    });
  const greeting = await next();
  return {
    greeting,
    command(line: string): Promise<string> {
      socket.write(`${line}\r\n`);
      return next();
    },
    /** Writes without waiting for a reply (part of a message body). */
    write(text: string) {
      socket.write(text);
    },
    close() {
      socket.destroy();
    },
  };
}

/** Whether a Debian mail client is installed: in CI a missing one fails the run (test-helpers' `needs`). */
export function hasTool(tool: "swaks" | "msmtp" | "postfix" | "fetchmail"): boolean {
  return needs(tool);
}

/**
 * `m365-mail bridge login --config <configPath> <account>`, as a person runs it: the code it prints is
 * approved at the emulator's Entra as `upn`. A command that ends before a code was issued (an account
 * that signs in with a password) comes back as it ended, without `userCode`.
 */
/** `runBridgeCommand` in this process (as `m365-mail bridge …`), with what it printed. */
export async function bridgeCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<ProcessResult> {
  let stdout = "";
  let stderr = "";
  const code = await runBridgeCommand(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    stdin: async () => "",
    env,
  });
  return { code, stdout, stderr };
}

export async function bridgeLogin(
  emulator: TestEmulator,
  configPath: string,
  account: string,
  upn: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string; userCode?: string }> {
  const before = emulator.admin.deviceCodes().length;
  const running = bridgeCommand(["login", "--config", configPath, account], env);
  const issued = await Promise.race([
    waitFor(async () => emulator.admin.deviceCodes()[before]),
    running.then(() => undefined),
  ]);
  if (issued) emulator.admin.approveDeviceCode(issued.userCode, upn);
  return { ...(await running), ...(issued ? { userCode: issued.userCode } : {}) };
}
