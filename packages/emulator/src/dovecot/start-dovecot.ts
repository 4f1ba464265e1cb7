/**
 * Runs the emulator's own Dovecot (IMAP and POP3 over the mailbox store) from a config folder it writes
 * under `<dataDir>/dovecot/`, on ports of its own, and stops it again.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { type Logger, M365MailError, redact, registerSecret, safeLogger } from "@m365-mail/core";
import type { TlsMaterial } from "../context.js";
import { isRoot, lookupGroupName, lookupUser, lookupUserName, type MailOwner } from "../store/mail-owner.js";
import type { MailStore } from "../store/mail-store.js";
import {
  assertSafePath,
  DOVECOT_SOURCE,
  type DovecotPorts,
  type DovecotProtocol,
  renderDovecotConfig,
  ssha256,
} from "./dovecot-config.js";
import { DOVECOT_INSTALL_HINT, type DovecotInstallation, inspectDovecot } from "./find-dovecot.js";

export interface StartDovecotOptions {
  /** The emulator's data folder; the config goes to `<dataDir>/dovecot/`. */
  dataDir: string;
  /** The mailbox store Dovecot serves (its Maildirs and file owner). */
  store: MailStore;
  /**
   * Introspection endpoint per protocol, e.g. `https://127.0.0.1:44443/introspect/imap`. It gets
   * `POST token=...` and answers RFC 7662 JSON: `active`, `username` (the token's UPN), and for
   * shared mailboxes `mailboxes`: ",own@x,shared@x," — every mailbox the token's user may open.
   */
  introspectionUrl: (protocol: DovecotProtocol) => string;
  /** The emulator's CA (trusted for the introspection call) and the server key and certificate. */
  tls: Pick<TlsMaterial, "caPem" | "keyPem" | "certPem">;
  /** @default "127.0.0.1" */
  host?: string;
  /** IMAP over implicit TLS (Exchange: 993). @default 0 — a free port */
  imapPort?: number;
  /** POP3 over implicit TLS (Exchange: 995). @default 0 — a free port */
  pop3Port?: number;
  /** Plain IMAP with STARTTLS. @default undefined — no such port; 0 — a free port */
  imapStartTlsPort?: number;
  /** Plain POP3 with STLS. @default undefined — no such port; 0 — a free port */
  pop3StartTlsPort?: number;
  /** LMTP listener for delivery through Dovecot. @default undefined — none; 0 — a free port */
  lmtpPort?: number;
  /** A master user that may open any mailbox with PLAIN/LOGIN as `<upn>*<username>`. @default none */
  masterUser?: { username: string; password: string };
  /** Milliseconds to wait for Dovecot to listen. @default 15000 */
  startTimeoutMs?: number;
  /** Dovecot's auth_debug: useful, but the log then holds tokens. @default false */
  debug?: boolean;
  logger?: Logger;
}

export interface DovecotServer {
  readonly host: string;
  readonly imapPort: number;
  readonly pop3Port: number;
  readonly imapStartTlsPort: number | undefined;
  readonly pop3StartTlsPort: number | undefined;
  readonly lmtpPort: number | undefined;
  /** The master process. */
  readonly pid: number;
  readonly configDir: string;
  readonly logPath: string;
  /**
   * Ends every IMAP/POP3 session of a user (`doveadm kick`); resolves to whether one was ended.
   * Clients see `* BYE Server shutting down.` — Dovecot cannot send Exchange's
   * `BYE Session invalidated - AccessTokenExpired`.
   */
  kick(upn: string): Promise<boolean>;
  /** SIGTERM to the master, then waits for it to exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

function failure(
  code: "NOT_SUPPORTED" | "CONFIG_INVALID" | "CONNECTION_FAILED" | "TIMEOUT",
  message: string,
  hint?: string,
  cause?: unknown,
): M365MailError {
  return new M365MailError(code, message, { source: DOVECOT_SOURCE, hint, cause });
}

function requireInstallation(needLmtp: boolean): DovecotInstallation {
  const found = inspectDovecot();
  if (!found) {
    throw failure(
      "NOT_SUPPORTED",
      "Dovecot is not installed: IMAP and POP3 are not available",
      `Install it: ${DOVECOT_INSTALL_HINT}`,
    );
  }
  const needed: (keyof DovecotInstallation["protocols"])[] = needLmtp
    ? ["imap", "pop3", "lmtp"]
    : ["imap", "pop3"];
  const missing = needed.filter((p) => !found.protocols[p]);
  if (missing.length > 0) {
    throw failure(
      "NOT_SUPPORTED",
      `Dovecot lacks ${missing.join(", ")}`,
      `Install it: ${DOVECOT_INSTALL_HINT}`,
    );
  }
  return found;
}

/** Free ports, all bound at once so that no two are the same; Dovecot binds them right after. */
async function freePorts(host: string, count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolvePort, reject) => {
            server.once("error", reject);
            server.listen(0, host, () => {
              const address = server.address();
              resolvePort(typeof address === "object" && address ? address.port : 0);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

/** The IMAP greeting comes only once Dovecot's auth process is up: a listening port alone is not enough. */
function greets(host: string, port: number, caPem: string): Promise<boolean> {
  return new Promise((done) => {
    const socket = tlsConnect({ host, port, ca: [caPem], servername: "localhost" });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), 2_000);
    socket.setEncoding("utf8");
    socket.once("data", (text: string) => finish(text.startsWith("* OK")));
    socket.once("error", () => finish(false));
    socket.once("close", () => finish(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A master left behind by a crashed run of this same config folder blocks the next start: end it. */
async function stopStaleInstance(configPath: string, runDir: string, log: Logger): Promise<void> {
  const pid = Number((await readFile(join(runDir, "master.pid"), "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid)) return;
  let cmdline = "";
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return;
  }
  if (!cmdline.split("\0").includes(configPath)) return;
  log.warn("stopping a Dovecot left running by an earlier emulator", { pid });
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(50);
}

/**
 * Dovecot's mail processes run as the mail owner: every folder above the Maildirs must let it pass.
 * The data folder itself gets o+x (traverse, not list) when missing; anything above is reported.
 */
async function ensureTraversable(dataDir: string, owner: MailOwner, log: Logger): Promise<void> {
  if (!isRoot()) return;
  const passes = (s: { mode: number; uid: number; gid: number }) =>
    (s.uid === owner.uid && (s.mode & 0o100) !== 0) ||
    (s.gid === owner.gid && (s.mode & 0o010) !== 0) ||
    (s.mode & 0o001) !== 0;
  const data = await stat(dataDir);
  if (!passes(data)) {
    await chmod(dataDir, (data.mode & 0o7777) | 0o001);
    log.info("made the data folder traversable for Dovecot's mail user", { dataDir, uid: owner.uid });
  }
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    if (!passes(await stat(dir))) {
      throw failure(
        "CONFIG_INVALID",
        `Dovecot's mail processes (uid ${owner.uid}) cannot enter ${dir}`,
        `Put the emulator's data folder where uid ${owner.uid} can pass (chmod o+x ${dir}), or run the emulator as a normal user.`,
      );
    }
    if (dirname(dir) === dir) break;
  }
}

function tail(text: string, lines = 15): string {
  return redact(text.trim().split("\n").slice(-lines).join("\n"));
}

export async function startDovecot(options: StartDovecotOptions): Promise<DovecotServer> {
  const log = safeLogger(options.logger, "dovecot");
  const host = options.host ?? "127.0.0.1";
  const installation = requireInstallation(options.lmtpPort !== undefined);
  const dataDir = resolve(options.dataDir);
  const dir = join(dataDir, "dovecot");
  assertSafePath(dir, "the Dovecot config folder");
  const configPath = join(dir, "dovecot.conf");
  const logPath = join(dir, "dovecot.log");
  const runDir = join(dir, "run");
  const owner = options.store.owner;
  const asRoot = isRoot();
  if (asRoot && owner.uid === 0) {
    throw failure(
      "CONFIG_INVALID",
      "Dovecot refuses to run mail processes as root (uid 0)",
      'Create the mail store with owner "auto" (the mail user) or an unprivileged { uid, gid }.',
    );
  }
  const ownerName = owner.name ?? lookupUserName(owner.uid);
  const me = lookupUserName(process.getuid?.() ?? 0);
  const internalUser = asRoot ? ownerName : me;
  const internalGroup = asRoot ? lookupGroupName(owner.gid) : lookupGroupName(process.getgid?.() ?? 0);
  if (!internalUser || !internalGroup) {
    throw failure(
      "CONFIG_INVALID",
      `no user/group name for uid ${asRoot ? owner.uid : process.getuid?.()} in /etc/passwd and /etc/group`,
      "Dovecot needs named users for its internal processes: run the emulator as a user listed in /etc/passwd.",
    );
  }
  const loginUser = asRoot ? (lookupUser("dovenull") ? "dovenull" : internalUser) : internalUser;

  if (options.masterUser) registerSecret(options.masterUser.password);
  await options.store.ensureRoot();
  await ensureTraversable(dataDir, owner, log);
  await stopStaleInstance(configPath, runDir, log);

  // Files the auth process reads run as the internal user (the mail owner when root).
  const own = async (path: string) => {
    if (asRoot) await chown(path, owner.uid, owner.gid);
  };
  await mkdir(join(dir, "tls"), { recursive: true, mode: 0o700 });
  await mkdir(join(dir, "state"), { recursive: true, mode: 0o700 });
  for (const path of [dir, join(dir, "tls"), join(dir, "state")]) await own(path);
  await writeFile(join(dir, "tls", "ca.pem"), options.tls.caPem, { mode: 0o644 });
  await own(join(dir, "tls", "ca.pem"));
  await writeFile(join(dir, "tls", "cert.pem"), options.tls.certPem, { mode: 0o644 });
  // Read by Dovecot's config process as root (or as us): stays ours, 0600.
  await writeFile(join(dir, "tls", "key.pem"), options.tls.keyPem, { mode: 0o600 });

  const wanted = {
    imaps: options.imapPort ?? 0,
    pop3s: options.pop3Port ?? 0,
    imapStartTls: options.imapStartTlsPort,
    pop3StartTls: options.pop3StartTlsPort,
    lmtp: options.lmtpPort,
  };
  const timeoutMs = options.startTimeoutMs ?? 15_000;

  for (let attempt = 1; ; attempt++) {
    // undefined: no listener (0 in Dovecot's config); 0: a free port.
    const requested = [wanted.imaps, wanted.pop3s, wanted.imapStartTls, wanted.pop3StartTls, wanted.lmtp];
    const fresh = await freePorts(host, requested.filter((p) => p === 0).length);
    const [imaps, pop3s, imapStartTls, pop3StartTls, lmtp] = requested.map((p) =>
      p === 0 ? fresh.shift()! : (p ?? 0),
    );
    const ports: DovecotPorts = {
      imaps: imaps!,
      pop3s: pop3s!,
      imapStartTls: imapStartTls!,
      pop3StartTls: pop3StartTls!,
      lmtp: lmtp!,
    };
    const files = renderDovecotConfig({
      dir,
      mailRoot: options.store.mailRoot,
      owner,
      asRoot,
      internalUser,
      internalGroup,
      loginUser,
      host,
      ports,
      introspectionUrl: { imap: options.introspectionUrl("imap"), pop3: options.introspectionUrl("pop3") },
      masterUserLine: options.masterUser
        ? `${options.masterUser.username}:${ssha256(options.masterUser.password)}`
        : undefined,
      debug: options.debug ?? false,
    });
    for (const file of files) {
      const path = join(dir, file.name);
      await writeFile(path, file.content, { mode: file.mode });
      await chmod(path, file.mode);
      if (file.name !== "dovecot.conf") await own(path);
    }
    // A fresh log per start, so that errors shown below are this start's.
    await rm(logPath, { force: true });

    const child = spawn(installation.dovecot, ["-F", "-c", configPath], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < 16_384) stderr += chunk.toString("utf8");
    });
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    let exitCode: number | null | undefined;
    void exited.then((code) => {
      exitCode = code;
    });
    const spawnError = new Promise<Error>((done) => child.once("error", done));
    let spawnFailed: Error | undefined;
    void spawnError.then((error) => {
      spawnFailed = error;
    });

    const listenPorts = [ports.imaps, ports.pop3s, ports.imapStartTls, ports.pop3StartTls, ports.lmtp].filter(
      (p) => p > 0,
    );
    const deadline = Date.now() + timeoutMs;
    let ready = false;
    while (Date.now() < deadline && exitCode === undefined && !spawnFailed) {
      const results = await Promise.all(listenPorts.map((p) => canConnect(host, p)));
      if (results.every(Boolean) && (await greets(host, ports.imaps, options.tls.caPem))) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (ready) {
      log.info("Dovecot listening", { imaps: ports.imaps, pop3s: ports.pop3s, pid: child.pid });
      return serve(child, exited, ports);
    }

    const logText = await readFile(logPath, "utf8").catch(() => "");
    const details = tail(`${stderr}\n${logText}`);
    if (exitCode === undefined && !spawnFailed) {
      child.kill("SIGKILL");
      await exited;
      throw failure(
        "TIMEOUT",
        `Dovecot did not listen within ${timeoutMs} ms:\n${details}`,
        `See ${logPath}.`,
      );
    }
    const portRace = /Address already in use/.test(details);
    const picked = requested.includes(0);
    if (portRace && picked && attempt < 3) {
      log.debug("a picked port was taken meanwhile; retrying", { attempt });
      continue;
    }
    throw failure(
      portRace ? "CONNECTION_FAILED" : "CONFIG_INVALID",
      `Dovecot did not start${spawnFailed ? `: ${spawnFailed.message}` : ` (exit code ${exitCode})`}:\n${details}`,
      portRace ? "Choose free ports (imapPort/pop3Port) or 0 for any." : `See ${logPath}.`,
      spawnFailed,
    );
  }

  function serve(child: ChildProcess, exited: Promise<number | null>, ports: DovecotPorts): DovecotServer {
    const pid = child.pid!;
    let stopped: Promise<void> | undefined;
    // Never leave a Dovecot behind when the emulator's process ends without stop().
    const onExit = () => {
      if (processAlive(pid)) process.kill(pid, "SIGTERM");
    };
    process.once("exit", onExit);

    const kick = (upn: string): Promise<boolean> => {
      const doveadm = installation.doveadm;
      if (!doveadm) {
        return Promise.reject(
          failure(
            "NOT_SUPPORTED",
            "doveadm was not found: sessions cannot be ended",
            `Install it: ${DOVECOT_INSTALL_HINT}`,
          ),
        );
      }
      return new Promise((done, reject) => {
        execFile(
          doveadm,
          ["-c", configPath, "kick", upn.toLowerCase()],
          { timeout: 10_000 },
          (error, stdout, stderrText) => {
            const text = `${stdout}\n${stderrText}`;
            if (error && !/no users (found|kicked)/i.test(text)) {
              reject(
                failure(
                  "CONNECTION_FAILED",
                  `doveadm kick failed: ${tail(text, 5)}`,
                  `See ${logPath}.`,
                  error,
                ),
              );
              return;
            }
            const kicked = /kicked connections from the following users/i.test(text);
            log.debug("kick", { upn, kicked });
            done(kicked);
          },
        );
      });
    };

    const stop = (): Promise<void> => {
      stopped ??= (async () => {
        process.removeListener("exit", onExit);
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
        log.info("Dovecot stopped", { pid });
      })();
      return stopped;
    };

    return {
      host,
      imapPort: ports.imaps,
      pop3Port: ports.pop3s,
      imapStartTlsPort: ports.imapStartTls || undefined,
      pop3StartTlsPort: ports.pop3StartTls || undefined,
      lmtpPort: ports.lmtp || undefined,
      pid,
      configDir: dir,
      logPath,
      kick,
      stop,
    };
  }
}
