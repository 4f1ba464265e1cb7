import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@m365-mail/core";
import {
  createMailStore,
  DEMO_PASSWORD,
  type Emulator,
  type GraphPart,
  graphPart,
  type SmtpEmulatorPart,
  smtpPart,
  startTestEmulator as startEmulatorInTempDir,
} from "@m365-mail/emulator";
import { needs } from "@m365-mail/test-helpers";
import { generateApiKey, hashApiKey } from "../src/api-keys.js";
import { loadServerConfig } from "../src/config.js";
import { type RunningServer, startServer } from "../src/start-server.js";

export const USER = "support@contoso.com";
export const ALICE = "alice@contoso.com";
export const SERVER_MAIN = join(import.meta.dirname, "..", "dist", "main.js");

export interface TestEmulator {
  emulator: Emulator;
  graph: GraphPart;
  smtp: SmtpEmulatorPart;
  dataDir: string;
  stop(): Promise<void>;
}

/** The emulator with Graph and SMTP in a temporary folder. */
export async function startTestEmulator(): Promise<TestEmulator> {
  const graph = graphPart();
  const smtp = smtpPart();
  const emulator = await startEmulatorInTempDir({ prefix: "m365-server-emu-", parts: [graph, smtp] });
  return { emulator, graph, smtp, dataDir: emulator.dataDir, stop: () => emulator.stop() };
}

/** The variables a server process needs to use the emulator as its tenant. */
export function emulatorEnv(emu: Emulator): Record<string, string> {
  return {
    M365_TENANT_ID: emu.tenantId,
    M365_CLIENT_ID: emu.clientId,
    M365_USERNAME: USER,
    M365_PASSWORD: DEMO_PASSWORD,
    M365_AUTHORITY_HOST: emu.authorityHost,
    M365_CA_FILE: emu.caPath,
    M365_GRAPH_ORIGIN: emu.cloud.graphOrigin ?? "",
    M365_SMTP_HOST: emu.cloud.smtp.host,
    M365_SMTP_PORT: String(emu.cloud.smtp.port),
  };
}

/** A server in this process on a free port, with one fresh API key. */
export async function startTestServer(
  emu: Emulator,
  env: Record<string, string> = {},
): Promise<{ server: RunningServer; key: string; url: string; dir: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "m365-server-"));
  const key = generateApiKey();
  const config = loadServerConfig(
    {
      ...emulatorEnv(emu),
      PORT: "0",
      TRANSPORTS: "graph,smtp",
      OUTBOX_PATH: join(dir, "outbox.db"),
      OUTBOX_SENT_ITEMS_GRACE_MS: "0",
      OUTBOX_RETRY_BASE_MS: "50",
      WATCH_INTERVAL_MS: "300",
      API_KEYS: `test:${hashApiKey(key)}`,
      ...env,
    },
    [],
  );
  const server = await startServer({ config, m365: config.m365!, logger: silentLogger });
  return {
    server,
    key,
    url: server.url,
    dir,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** fetch with the API key. */
export function client(url: string, key: string) {
  return (path: string, init: RequestInit = {}) =>
    fetch(url + path, {
      ...init,
      headers: {
        authorization: `Bearer ${key}`,
        ...(init.body ? { "content-type": "application/json" } : {}),
        ...(init.headers as Record<string, string>),
      },
    });
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A sample from Prometheus text, summed over every series of `name` whose labels include `labels`. */
export function metric(text: string, name: string, labels: string): number {
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

export async function metricsOf(url: string, key: string): Promise<string> {
  return (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
}

/** Waits until the outbox has nothing queued or sending; returns the metrics text of that moment. */
export function outboxDrained(url: string, key: string, timeoutMs: number): Promise<string> {
  return waitFor(
    async () => {
      const text = await metricsOf(url, key);
      const busy =
        metric(text, "m365_outbox_messages", 'state="queued"') +
        metric(text, "m365_outbox_messages", 'state="sending"');
      return busy === 0 ? text : undefined;
    },
    timeoutMs,
    "the outbox to drain",
  );
}

/** Subjects of every message in a mailbox folder, read straight from the emulator's store. */
export async function subjectsIn(dataDir: string, upn: string, folder: string): Promise<string[]> {
  const store = createMailStore({ root: dataDir, logger: silentLogger });
  const messages = await store.list(upn, folder).catch(() => []);
  const subjects: string[] = [];
  for (const m of messages) {
    const { raw } = await store.read(upn, m.id);
    const head = raw.subarray(0, Math.min(raw.length, 8192)).toString("utf8");
    const match = /^Subject: ?(.*(?:\r?\n[ \t].*)*)/im.exec(head);
    subjects.push(match ? match[1]!.replace(/\r?\n[ \t]/g, " ").trim() : "");
  }
  return subjects;
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** `node dist/main.js` as a child process; resolves once it prints its URL. */
export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_MAIN], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out.slice(-2000)}`)), 30_000);
    const onData = () => {
      const match = /m365-mail server on (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out.slice(-2000)}`));
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    url,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

export { freePort } from "@m365-mail/test-helpers";
export const CHROMIUM = "/usr/bin/chromium";
// In CI a missing Redis or Chromium fails the files that need it, with the install command; locally they skip.
export const hasRedis = (): boolean => needs("redis");
export const hasChromium = (): boolean =>
  needs("chromium", () => spawnSync(CHROMIUM, ["--version"]).status === 0);
