/**
 * What the IMAP and POP3 relay tests share: the emulator with Dovecot (implicit-TLS and STARTTLS ports),
 * an `Authenticate` built from real ROPC sign-ins against it, front doors on free ports, raw socket
 * dialogues, and runners for the unmodified clients (python3, curl, fetchmail).
 */
import { spawn } from "node:child_process";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import { type Logger, M365MailError, type TokenProvider } from "@m365-mail/core";
import {
  type DovecotPart,
  dovecotPart,
  findDovecot,
  startTestEmulator,
  type TestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { needs, toMime } from "@m365-mail/test-helpers";
import type {
  Authenticate,
  FrontDoor,
  FrontDoorLimits,
  FrontDoorOptions,
  ListenerSecurity,
  SessionRecord,
} from "../src/front-door.js";
import type { BridgeStatus } from "../src/start-bridge.js";

// In CI a missing Dovecot fails the run instead of skipping the relay suites (test-helpers' needs).
export const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);
export const SUPPORT = "support@contoso.com";
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RelayEnv {
  emulator: TestEmulator;
  dovecot: DovecotPart;
  /** Every line any front door logged, to check that no secret reaches a log. */
  logLines: string[];
  logger: Logger;
  /** Password grants and sign-ins made by `authenticate`, by user. */
  signIns: Map<string, number>;
  authenticate: Authenticate;
  records: SessionRecord[];
  stop(): Promise<void>;
}

export async function startRelayEnv(prefix: string): Promise<RelayEnv> {
  const dovecot = dovecotPart({ imapStartTlsPort: 0, pop3StartTlsPort: 0 });
  const emulator = await startTestEmulator({ prefix, parts: [dovecot] });
  if (!dovecot.server) {
    await emulator.stop();
    throw new Error(`the Dovecot part did not start: ${JSON.stringify(emulator.parts.dovecot)}`);
  }
  const logLines: string[] = [];
  const sink = (level: string) => (message: string, data?: Record<string, unknown>) =>
    logLines.push(`${level} ${message}${data ? ` ${JSON.stringify(data)}` : ""}`);
  const logger: Logger = {
    debug: sink("debug"),
    info: sink("info"),
    warn: sink("warn"),
    error: sink("error"),
  };
  const signIns = new Map<string, number>();
  // Until startBridge wires the real credentials module: the device password is the Microsoft 365 password
  // (passthrough), checked by a real ROPC grant against the emulator; one provider per user and password.
  const providers = new Map<string, { password: string; auth: TokenProvider }>();
  const authenticate: Authenticate = async (username, password) => {
    const key = username.toLowerCase();
    let entry = providers.get(key);
    if (!entry || entry.password !== password) {
      const auth = ropcTokenProvider({
        ...tokenProviderOptions(emulator, username),
        password,
        engine: "http",
      });
      signIns.set(key, (signIns.get(key) ?? 0) + 1);
      try {
        await auth.getAccessToken("outlook");
      } catch (error) {
        throw error instanceof M365MailError
          ? error
          : new M365MailError("AUTH_FAILED", "sign-in failed", { source: "bridge", cause: error });
      }
      entry = { password, auth };
      providers.set(key, entry);
    }
    return { account: key, mailbox: key, auth: entry.auth };
  };
  return {
    emulator,
    dovecot,
    logLines,
    logger,
    signIns,
    authenticate,
    records: [],
    async stop() {
      for (const { auth } of providers.values()) await auth.dispose?.();
      await emulator.stop();
    },
  };
}

export const DEFAULT_LIMITS: FrontDoorLimits = {
  maxConnections: 50,
  maxConnectionsPerIp: 20,
  idleTimeoutMs: 60_000,
  loginTimeoutMs: 20_000,
  maxLineBytes: 8192,
  maxLiteralBytes: 8192,
};

export interface FrontDoorSetup {
  security: ListenerSecurity;
  upstreamSecurity?: "tls" | "starttls";
  limits?: Partial<FrontDoorLimits>;
  authenticate?: Authenticate;
  isClientAllowed?: (address: string) => boolean;
}

/** Options for a front door on a free port of 127.0.0.1, upstream the emulator's Dovecot. */
export function frontDoorOptions(
  env: RelayEnv,
  protocol: "imap" | "pop3",
  setup: FrontDoorSetup,
): FrontDoorOptions {
  const server = env.dovecot.server!;
  const starttls = setup.upstreamSecurity === "starttls";
  const port =
    protocol === "imap"
      ? starttls
        ? server.imapStartTlsPort!
        : server.imapPort
      : starttls
        ? server.pop3StartTlsPort!
        : server.pop3Port;
  return {
    host: "127.0.0.1",
    port: 0,
    security: setup.security,
    tls: { key: env.emulator.context.tls.keyPem, cert: env.emulator.context.tls.certPem },
    authenticate: setup.authenticate ?? env.authenticate,
    upstream: {
      host: server.host,
      port,
      security: setup.upstreamSecurity ?? "tls",
      ca: env.emulator.caPem,
    },
    ...(setup.isClientAllowed ? { isClientAllowed: setup.isClientAllowed } : {}),
    limits: { ...DEFAULT_LIMITS, ...setup.limits },
    logger: env.logger,
    onSession: (record) => env.records.push(record),
  };
}

export async function deliver(env: RelayEnv, upn: string, subject: string, text = "hello"): Promise<void> {
  await env.emulator.store.deliver(upn, "inbox", await toMime({ to: upn, subject, text }), { seen: true });
}

/** A raw client: send bytes, wait for what the server says. */
export class RawClient {
  private data = "";
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.data += chunk;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("error", () => {});
  }

  static open(
    port: number,
    options: { tls?: boolean; ca?: string; localAddress?: string } = {},
  ): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const local = options.localAddress ? { localAddress: options.localAddress } : {};
      const socket = options.tls
        ? tlsConnect({ host: "127.0.0.1", port, ...local, ...(options.ca ? { ca: options.ca } : {}) })
        : netConnect({ host: "127.0.0.1", port, ...local });
      socket.once(options.tls ? "secureConnect" : "connect", () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Everything received so far. */
  get text(): string {
    return this.data;
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** Waits until the received text matches (searching from `from`); returns the text up to the match's end. */
  async until(pattern: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.data.slice(from);
      const match = pattern.exec(rest);
      if (match) return rest.slice(0, match.index + match[0].length);
      if (this.closed) throw new Error(`closed before ${pattern}; got: ${JSON.stringify(rest)}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; got: ${JSON.stringify(rest)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves when the server closed the connection (or fails after the timeout). */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > end) throw new Error(`still open; got: ${JSON.stringify(this.data)}`);
      await sleep(20);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with input on stdin; killed after `timeoutMs`. */
export function run(
  command: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Stops every front door given. */
export async function closeAll(doors: readonly (FrontDoor | undefined)[]): Promise<void> {
  await Promise.all(doors.map((d) => d?.close({ drainMs: 0 })));
}

export interface FetchmailRun extends RunResult {
  /** What the MDA received: every message fetched, one after the other. */
  mailbox: string;
}

/**
 * Debian's fetchmail as an unattended user runs it: a 0600 rc file, HOME in a temp folder, the MDA
 * appending to a file, no syslog, verbose. Exit status 0 = mail fetched, 1 = none, 3 = login refused.
 */
export async function runFetchmail(options: {
  protocol: "IMAP" | "POP3";
  port: number;
  /** "tls": implicit TLS; "starttls": STARTTLS/STLS required; "plain": no TLS at all. */
  mode: "tls" | "starttls" | "plain";
  user: string;
  password: string;
  ca: string;
}): Promise<FetchmailRun> {
  const { mkdtemp, readFile, rm, writeFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const home = await mkdtemp(join(tmpdir(), "m365-bridge-fetchmail-"));
  try {
    const mbox = join(home, "mbox");
    const tls =
      options.mode === "tls"
        ? `ssl sslcertck sslcertfile "${options.ca}" sslcommonname localhost`
        : options.mode === "starttls"
          ? `sslproto "TLS1.2+" sslcertck sslcertfile "${options.ca}" sslcommonname localhost`
          : `sslproto ""`;
    const rc = [
      "set no syslog",
      `poll localhost via 127.0.0.1 service ${options.port} protocol ${options.protocol} auth password timeout 20`,
      `  user "${options.user}" there with password "${options.password.replace(/(["\\])/g, "\\$1")}" is "${process.env.USER ?? "root"}" here`,
      `  ${tls}`,
      "  keep fetchall",
      `  mda "cat >> ${mbox}"`,
      "",
    ].join("\n");
    const rcPath = join(home, "fetchmailrc");
    await writeFile(rcPath, rc, { mode: 0o600 });
    const result = await run("fetchmail", ["-f", rcPath, "-v", "--nosyslog", "--nodetach"], {
      env: { HOME: home, FETCHMAILHOME: home },
      timeoutMs: 60_000,
    });
    const mailbox = await readFile(mbox, "utf8").catch(() => "");
    return { ...result, mailbox };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

export interface RelayBridge {
  /** The port of each listener of `protocol` by its security. */
  port(protocol: "imap" | "pop3", security: ListenerSecurity): number;
  lines: string[];
  status(): BridgeStatus;
  metrics(): string;
  close(): Promise<void>;
}

/**
 * The whole bridge (`startBridge`: config validation, passthrough credentials with the lockout guard,
 * the relays) in front of the emulator: one IMAP and one POP3 listener per security, every contoso.com
 * user logging in with their own Microsoft 365 password, the emulator's certificate on the TLS listeners.
 */
/** `extra`: more of the bridge's config (e.g. a Redis tokenCache), beside its listeners and one catch-all account. */
export async function startRelayBridge(
  env: RelayEnv,
  extra: Record<string, unknown> = {},
): Promise<RelayBridge> {
  const { writeFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const { startBridge, validateBridgeConfig } = await import("../src/index.js");
  const dir = env.emulator.dataDir;
  const certFile = join(dir, "bridge-cert.pem");
  const keyFile = join(dir, "bridge-key.pem");
  await writeFile(certFile, env.emulator.context.tls.certPem);
  await writeFile(keyFile, env.emulator.context.tls.keyPem, { mode: 0o600 });
  const securities: ListenerSecurity[] = ["plain", "starttls", "tls"];
  const listeners = (["imap", "pop3"] as const).flatMap((protocol) =>
    securities.map((security) => ({
      protocol,
      host: "127.0.0.1",
      port: 0,
      security,
      ...(security === "plain" ? {} : { tls: { certFile, keyFile } }),
    })),
  );
  const config = validateBridgeConfig(
    {
      dataDir: join(dir, "bridge"),
      m365: { engine: "http", caFile: env.emulator.caPath },
      listeners,
      accounts: [{ name: "contoso", credentials: { mode: "passthrough", domain: "contoso.com" } }],
      ...extra,
    },
    env.emulator.env(),
  );
  const lines: string[] = [];
  const sink = (level: string) => (message: string, data?: Record<string, unknown>) =>
    lines.push(`${level} ${message}${data ? ` ${JSON.stringify(data)}` : ""}`);
  const bridge = await startBridge(config, {
    // No `relays` option: startBridge's own IMAP and POP3 front doors, as `m365-mail bridge` runs them.
    logger: { debug: sink("debug"), info: sink("info"), warn: sink("warn"), error: sink("error") },
  });
  // addresses come in the order of config.listeners.
  const relayAddresses = bridge.addresses.filter((a) => a.protocol === "imap" || a.protocol === "pop3");
  return {
    port(protocol, security) {
      const index = listeners.findIndex((l) => l.protocol === protocol && l.security === security);
      const address = relayAddresses[index];
      if (!address || address.protocol !== protocol) throw new Error(`no ${protocol} ${security} listener`);
      return address.port;
    },
    lines,
    status: () => bridge.status(),
    metrics: () => bridge.metrics(),
    close: () => bridge.close({ drainMs: 0 }),
  };
}

/** Waits (up to 5 s) for a session record with these fields: the bridge writes it once it saw the close too. */
export async function waitForRecord(
  env: RelayEnv,
  fields: Partial<SessionRecord>,
  since = 0,
): Promise<SessionRecord> {
  const end = Date.now() + 5000;
  for (;;) {
    const found = env.records
      .slice(since)
      .find((r) => Object.entries(fields).every(([k, v]) => r[k as keyof SessionRecord] === v));
    if (found) return found;
    if (Date.now() > end)
      throw new Error(
        `no session record like ${JSON.stringify(fields)} in ${JSON.stringify(env.records.slice(since))}`,
      );
    await sleep(20);
  }
}
