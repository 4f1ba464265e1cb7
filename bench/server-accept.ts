/**
 * `pnpm bench server-accept`: how many sends per second the sample server accepts with the durable
 * write (SQLite WAL, synchronous=FULL: committed and fsynced before the 202), and the p99 latency.
 *
 * The built server (apps/server/dist/main.js) runs as a child process against the emulator (started
 * here, Graph + SMTP), with its delivery workers on — they deliver in the background under Outlook's
 * limits, as in production. A bounded loop of keep-alive HTTP requests on 127.0.0.1 sends REQUESTS
 * messages, CONCURRENCY at a time; the whole run stops itself after DEADLINE_MS.
 *
 * What is compared, and why: per_s and p99_ms are absolute figures (the floor is 1,000/s), not a
 * ratio. Printed beside them for scale only, not as a like-for-like baseline: the raw library —
 * better-sqlite3 inserting the same rows one commit each with synchronous=FULL, the cost the server's
 * group commit avoids (same durability per row, none of the server's HTTP, validation or queue work).
 * Ends with exactly one line: RESULT server-accept per_s=<n> p99_ms=<n>
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

const dir = await mkdtemp(join(tmpdir(), "bench-server-accept-"));
const emu = await startEmulator({ dataDir: join(dir, "emulator"), parts: [graphPart(), smtpPart()] });
const key = generateApiKey();
const child = spawn(process.execPath, [new URL("../apps/server/dist/main.js", import.meta.url).pathname], {
  env: {
    PATH: process.env.PATH ?? "",
    PORT: "0",
    LOG_LEVEL: "error",
    API_KEYS: `bench:${hashApiKey(key)}`,
    RATE_LIMIT_PER_MINUTE: "0",
    WATCH_VIA: "off",
    TRANSPORTS: "graph,smtp",
    OUTBOX_PATH: join(dir, "outbox.db"),
    M365_TENANT_ID: emu.tenantId,
    M365_CLIENT_ID: emu.clientId,
    M365_USERNAME: "support@contoso.com",
    M365_PASSWORD: DEMO_PASSWORD,
    M365_AUTHORITY_HOST: emu.authorityHost,
    M365_CA_FILE: emu.caPath,
    M365_GRAPH_ORIGIN: emu.cloud.graphOrigin ?? "",
    M365_SMTP_HOST: emu.cloud.smtp.host,
    M365_SMTP_PORT: String(emu.cloud.smtp.port),
  },
  stdio: ["ignore", "pipe", "inherit"],
});
const deadline = setTimeout(() => {
  console.error("[bench] deadline reached, stopping");
  child.kill("SIGKILL");
  process.exit(1);
}, DEADLINE_MS);

let output = "";
const url = await new Promise<URL>((resolve, reject) => {
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    const match = /m365-mail server on (http:\/\/\S+)/.exec(output);
    if (match) resolve(new URL(match[1]!));
  });
  child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
});

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const body = (n: number) =>
  JSON.stringify({
    to: "alice@contoso.com",
    subject: `bench ${n}`,
    text: `Accept benchmark message ${n}. ${"lorem ipsum ".repeat(20)}`,
  });

function post(n: number): Promise<number> {
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
        res.on("end", () =>
          res.statusCode === 202
            ? resolve(performance.now() - started)
            : reject(new Error(`status ${res.statusCode}`)),
        );
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
} finally {
  clearTimeout(deadline);
  agent.destroy();
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  await emu.stop();
  await rm(dir, { recursive: true, force: true });
}
console.log(`RESULT server-accept per_s=${perSecond} p99_ms=${p99}`);
