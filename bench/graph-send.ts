/**
 * `pnpm bench graph-send`: 200 messages through @m365-mail/transport-graph against the emulator with
 * Outlook's limits (4 concurrent requests per mailbox, 10,000 requests per 10 minutes). Every
 * sendMail is held LATENCY_MS inside its concurrency slot by the emulator (a "delay" fault), so the
 * limits allow no less than ceil(200 / 4) × LATENCY_MS of wall time. The request budget does not bind
 * here (200 requests of 10,000): concurrency × latency is the floor. The emulator's own work per send
 * (MIME, Maildir) comes on top of that floor and counts against us.
 *
 * What is compared, and why it is fair: our wall time against that floor — the least time any client,
 * the raw Graph SDK included, could take for the same 200 sends under the same limits and the same
 * injected latency. A ratio near 1 means the transport keeps all 4 slots busy without a 429.
 *
 * Counts what arrived in the recipient's Inbox, finds duplicates, and ends with exactly one line:
 * RESULT graph-send failures=<n> duplicates=<n> ratio=<wall / minimum>
 * Imports the built packages (`pnpm bench` builds them first).
 */
import { setMaxListeners } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { DEMO_PASSWORD, graphPart, startEmulator } from "../packages/emulator/dist/index.js";
import { graphTransport } from "../packages/transport-graph/dist/index.js";

const MESSAGES = 200;
const CONCURRENCY = 4; // Outlook: 4 concurrent requests per app and mailbox
const LATENCY_MS = 200;
const BUDGET = { requestsPerWindow: 10_000, windowSeconds: 600 };
const DEADLINE_MS = 180_000; // the whole run stops itself after this
const SENDER = "support@contoso.com";
const RECIPIENT = "alice@contoso.com";

const dataDir = await mkdtemp(join(tmpdir(), "bench-graph-send-"));
const graph = graphPart({ limits: { concurrency: CONCURRENCY, ...BUDGET } });
const emu = await startEmulator({ dataDir, parts: [graph] });
const deadline = AbortSignal.timeout(DEADLINE_MS);
// All 200 sends share this signal: each waiting for a request slot listens to it.
setMaxListeners(MESSAGES * 4, deadline);
const provider = (username: string) =>
  ropcTokenProvider({
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    username,
    password: DEMO_PASSWORD,
    cloud: emu.cloud,
    ca: emu.caPem,
  });
const senderAuth = provider(SENDER);
const readerAuth = provider(RECIPIENT);
const sender = graphTransport({ auth: senderAuth, ca: emu.caPem, maxConcurrency: CONCURRENCY });
const reader = graphTransport({ auth: readerAuth, ca: emu.caPem });

let failures = MESSAGES;
let duplicates = 0;
let ratio = Number.POSITIVE_INFINITY;
try {
  // Sign-in and TLS set-up happen before the clock starts: they are not what is measured.
  await senderAuth.getAccessToken("graph");
  await readerAuth.getAccessToken("graph");
  await sender.listFolders({ signal: deadline });
  graph.resetThrottling();
  emu.admin.resetCounts();
  emu.admin.armFault({
    target: "graph",
    path: "/sendMail",
    kind: "delay",
    delayMs: LATENCY_MS,
    times: MESSAGES * 2,
  });

  const run = Math.random().toString(36).slice(2, 8);
  const subjects = Array.from({ length: MESSAGES }, (_, i) => `bench ${run} #${String(i).padStart(3, "0")}`);
  const started = performance.now();
  const outcomes = await Promise.allSettled(
    subjects.map((subject) =>
      sender.send({ to: RECIPIENT, subject, text: `graph-send benchmark, ${subject}` }, { signal: deadline }),
    ),
  );
  const wall = performance.now() - started;
  emu.admin.clearFaults();

  const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
  const arrived = new Map<string, number>();
  for await (const m of reader.listMessages({ folder: "inbox", pageSize: 100 }, { signal: deadline })) {
    if (m.subject.startsWith(`bench ${run} `)) arrived.set(m.subject, (arrived.get(m.subject) ?? 0) + 1);
  }
  const missing = subjects.filter((s) => !arrived.has(s)).length;
  duplicates = [...arrived.values()].reduce((sum, n) => sum + (n - 1), 0);
  failures = Math.max(rejected.length, missing);

  const minimum = Math.ceil(MESSAGES / CONCURRENCY) * LATENCY_MS;
  ratio = wall / minimum;
  const counts = emu.admin.counts();
  const peak = Object.values(graph.throttlingUsage()).reduce((max, u) => Math.max(max, u.peak), 0);

  console.log(`messages sent:            ${MESSAGES} (${rejected.length} rejected)`);
  console.log(
    `emulator limits:          ${CONCURRENCY} concurrent, ${BUDGET.requestsPerWindow} requests / ${BUDGET.windowSeconds} s, ${LATENCY_MS} ms held per sendMail`,
  );
  console.log(
    `minimum wall time:        ceil(${MESSAGES} / ${CONCURRENCY}) × ${LATENCY_MS} ms = ${minimum} ms`,
  );
  console.log(
    `measured wall time:       ${wall.toFixed(0)} ms (${((MESSAGES / wall) * 1000).toFixed(1)} messages/s)`,
  );
  console.log(
    `delivered to ${RECIPIENT}: ${arrived.size} distinct, ${missing} missing, ${duplicates} duplicates`,
  );
  console.log(
    `Graph requests:           ${counts["graph.requests"] ?? 0} (429 answers: ${counts["graph.429"] ?? 0}, peak in flight: ${peak})`,
  );
  for (const r of rejected.slice(0, 3))
    console.log(`  rejected: ${String((r.reason as Error)?.message ?? r.reason)}`);
} catch (error) {
  console.error(`[bench] graph-send failed: ${String((error as Error)?.message ?? error)}`);
  process.exitCode = 1;
} finally {
  await sender.close();
  await reader.close();
  await senderAuth.dispose?.();
  await readerAuth.dispose?.();
  await emu.stop();
  await rm(dataDir, { recursive: true, force: true });
}
console.log(
  `RESULT graph-send failures=${failures} duplicates=${duplicates} ratio=${Number.isFinite(ratio) ? ratio.toFixed(3) : "inf"}`,
);
