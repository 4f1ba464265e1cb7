/**
 * `pnpm bench server-accept`: how many sends per second the sample server accepts with the durable
 * write (SQLite WAL, synchronous=FULL: committed and fsynced before the 202), and the p99 latency.
 *
 * The built server (apps/server/dist/main.js) runs as a child process against the emulator (started
 * here, Graph + SMTP), with its delivery workers on — they deliver in the background under Outlook's
 * limits, as in production. A bounded loop of keep-alive HTTP requests on 127.0.0.1 sends REQUESTS
 * messages, CONCURRENCY at a time; the whole run stops itself after DEADLINE_MS.
 *
 * What is compared, and why: per_s and p99_ms are absolute figures (the issue's floor is 1,000/s), not a
 * ratio. Printed beside them for scale only, not as a like-for-like baseline: the raw library —
 * better-sqlite3 inserting the same rows one commit each with synchronous=FULL, the cost the server's
 * group commit avoids (same durability per row, none of the server's HTTP, validation or queue work).
 * Then the same server again with one key's default rate limit (RATE_LIMIT_PER_MINUTE unset: 600 a
 * minute, a fixed window): a burst of LIMITED_REQUESTS, counting 202s and 429s. default_limits_per_s is
 * what one key sustains — the 202s of one window over the window's length, both read from the answers
 * (x-ratelimit-limit, x-ratelimit-reset) — since a burst shorter than the window would overstate it.
 * Ends with exactly one line: RESULT server-accept per_s=<n> p99_ms=<n> default_limits_per_s=<n>
 * Imports the built packages (`pnpm bench` builds them first).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { generateApiKey, hashApiKey } from "../apps/server/dist/index.js";
import { DEMO_PASSWORD, graphPart, smtpPart, startEmulator } from "../packages/emulator/dist/index.js";

const REQUESTS = 5000;
const WARMUP = 300;
const CONCURRENCY = 64;
const DEADLINE_MS = 120_000;
const RAW_ROWS = 300;
const LIMITED_REQUESTS = 1000;

const dir = await mkdtemp(join(tmpdir(), "bench-server-accept-"));
const emu = await startEmulator({ dataDir: join(dir, "emulator"), parts: [graphPart(), smtpPart()] });
const key = generateApiKey();

/** The built server as a child process; `env` adds to (or overrides) the bench's settings. */
async function startServerProcess(name: string, extra: Record<string, string>) {
  const child = spawn(process.execPath, [new URL("../apps/server/dist/main.js", import.meta.url).pathname], {
    env: {
      PATH: process.env.PATH ?? "",
      PORT: "0",
      LOG_LEVEL: "error",
      API_KEYS: `bench:${hashApiKey(key)}`,
      WATCH_VIA: "off",
      TRANSPORTS: "graph,smtp",
      OUTBOX_PATH: join(dir, name, "outbox.db"),
      M365_TENANT_ID: emu.tenantId,
      M365_CLIENT_ID: emu.clientId,
      M365_USERNAME: "support@contoso.com",
      M365_PASSWORD: DEMO_PASSWORD,
      M365_AUTHORITY_HOST: emu.authorityHost,
      M365_CA_FILE: emu.caPath,
      M365_GRAPH_ORIGIN: emu.cloud.graphOrigin ?? "",
      M365_SMTP_HOST: emu.cloud.smtp.host,
      M365_SMTP_PORT: String(emu.cloud.smtp.port),
      ...extra,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  let output = "";
  const url = await new Promise<URL>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /m365-mail server on (http:\/\/\S+)/.exec(output);
      if (match) resolve(new URL(match[1]!));
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  };
  return { url, stop };
}

const children: ReturnType<typeof spawn>[] = [];
const deadline = setTimeout(() => {
  console.error("[bench] deadline reached, stopping");
  for (const child of children) child.kill("SIGKILL");
  process.exit(1);
}, DEADLINE_MS);

const unlimited = await startServerProcess("unlimited", { RATE_LIMIT_PER_MINUTE: "0" });
let url = unlimited.url;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const body = (n: number) =>
  JSON.stringify({
    to: "alice@contoso.com",
    subject: `bench ${n}`,
    text: `Accept benchmark message ${n}. ${"lorem ipsum ".repeat(20)}`,
  });

interface Answer {
  status: number;
  ms: number;
  limit?: number;
  resetSeconds?: number;
}

function post(n: number): Promise<number> {
  return send(n).then((a) => (a.status === 202 ? a.ms : Promise.reject(new Error(`status ${a.status}`))));
}

function send(n: number): Promise<Answer> {
  const payload = body(n);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: "/v1/messages",
        method: "POST",
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          "idempotency-key": `bench-${n}`,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          const limit = Number(res.headers["x-ratelimit-limit"]);
          const reset = Number(res.headers["x-ratelimit-reset"]);
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            ...(Number.isFinite(limit) ? { limit } : {}),
            ...(Number.isFinite(reset) ? { resetSeconds: reset } : {}),
          });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function run(from: number, count: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = from;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < from + count) latencies.push(await post(next++));
    }),
  );
  return latencies;
}

let perSecond = 0;
let p99 = 0;
let limitedPerSecond = 0;
try {
  await run(0, WARMUP);
  const started = performance.now();
  const latencies = await run(WARMUP, REQUESTS);
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  perSecond = Math.round(REQUESTS / seconds);
  p99 = Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]! * 10) / 10;
  const p50 = Math.round(latencies[Math.floor(latencies.length / 2)]! * 10) / 10;
  console.log(
    `[bench] ${REQUESTS} sends accepted in ${seconds.toFixed(2)} s, ${CONCURRENCY} at a time: ${perSecond}/s, p50 ${p50} ms, p99 ${p99} ms`,
  );

  // The raw library for scale: one durable commit per row, as a server without group commit would do.
  const require = createRequire(new URL("../packages/outbox/package.json", import.meta.url));
  const Database = require("better-sqlite3");
  const db = new Database(join(dir, "raw.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, payload TEXT)");
  const insert = db.prepare("INSERT INTO t VALUES (?, ?)");
  const rawStarted = performance.now();
  for (let i = 0; i < RAW_ROWS; i++) insert.run(randomBytes(16).toString("hex"), body(i));
  const rawPerSecond = Math.round(RAW_ROWS / ((performance.now() - rawStarted) / 1000));
  db.close();
  console.log(
    `[bench] raw better-sqlite3, one fsynced commit per row: ${rawPerSecond}/s; server with HTTP, validation and group commit: ${(perSecond / rawPerSecond).toFixed(2)}× that`,
  );
  await unlimited.stop();

  // One key with the default rate limit: the burst takes what one window allows, the rest is 429.
  const limited = await startServerProcess("limited", {});
  url = limited.url;
  const answers: Answer[] = [];
  let next = 0;
  const burstStarted = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < LIMITED_REQUESTS) answers.push(await send(1_000_000 + next++));
    }),
  );
  const burstSeconds = (performance.now() - burstStarted) / 1000;
  const accepted = answers.filter((a) => a.status === 202).length;
  const refused = answers.filter((a) => a.status === 429).length;
  const other = answers.length - accepted - refused;
  const first = answers.find((a) => a.limit !== undefined);
  // The window's length: the first answer's reset time is (almost) the whole window.
  const windowSeconds = Math.max(...answers.map((a) => a.resetSeconds ?? 0), 1);
  limitedPerSecond = Math.round((accepted / windowSeconds) * 10) / 10;
  console.log(
    `[bench] default limits (x-ratelimit-limit ${first?.limit ?? "?"} per ${windowSeconds} s window): ${LIMITED_REQUESTS} sends in ${burstSeconds.toFixed(2)} s → ${accepted} accepted, ${refused} refused with 429${other ? `, ${other} other` : ""}; sustained ${limitedPerSecond}/s for one key`,
  );
  await limited.stop();
} finally {
  clearTimeout(deadline);
  agent.destroy();
  await Promise.all(
    children.map((child) =>
      child.exitCode === null
        ? new Promise((r) => {
            child.once("exit", r);
            child.kill("SIGTERM");
          })
        : undefined,
    ),
  );
  await emu.stop();
  await rm(dir, { recursive: true, force: true });
}
console.log(`RESULT server-accept per_s=${perSecond} p99_ms=${p99} default_limits_per_s=${limitedPerSecond}`);
