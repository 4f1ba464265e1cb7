/**
 * `pnpm bench imap-fetch`: 2,000 messages (text of 1–8 kB, every tenth with a 30 kB attachment) are put
 * into support@contoso.com through the emulator's mail store; then all of them are fetched over IMAP from
 * the emulator (its front before Dovecot), once through @m365-mail/transport-imap
 * (`listMessages({ includeSource: true })`: NOOP, SEARCH, then UID FETCHes of 200, 800 and 1,000 messages,
 * newest first, one in flight ahead) and once through raw imapflow (`fetch("1:*")`, one streamed FETCH,
 * oldest first), with the same token against the same server. The emulator runs in a process of its own
 * (bench/lib/emulator-process.ts), as Exchange is never in its client's process.
 *
 * What is compared, and why it is fair: both ask the server for exactly the same items — UID, FLAGS,
 * RFC822.SIZE, INTERNALDATE and the full source, no ENVELOPE and no BODYSTRUCTURE (what transport-imap's
 * `summaryQuery(true)` asks for; its subject, addresses and Message-ID come from each source's header,
 * work that counts against us). Both keep one warm, signed-in connection; connecting is not measured.
 * 41 rounds run both back to back, alternating who goes first, after one warm-up round each (Dovecot
 * builds its index on the first pass); the ratio is the median of the rounds' ours/raw messages per
 * second, printed with its interquartile range (single rounds scatter by ±0.15 on a 2-core machine; 21
 * rounds left the median moving by ±0.05). Every round checks that both saw the same 2,000 messages
 * and bytes.
 *
 * Ends with exactly one line: RESULT imap-fetch ratio=<ours msgs/s ÷ raw msgs/s> cpu_ratio=<raw ÷ ours>
 * cpu_ratio (no floor; for reading the ratio) is the median of the rounds' client CPU per listing, raw
 * imapflow's ÷ ours, from this process's `process.cpuUsage` (the server runs elsewhere): what the
 * transport's own work costs, steadier than throughput on a machine whose rounds scatter.
 * Imports the built packages (`pnpm bench` builds them first). Needs Dovecot (see the emulator's README).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { createMailStore, DEMO_PASSWORD, findDovecot } from "../packages/emulator/dist/index.js";
import { imapTransport } from "../packages/transport-imap/dist/index.js";
import { startEmulatorProcess } from "./lib/emulator-process.js";

// imapflow exactly as transport-imap resolves it (same version, same ESM build).
const require = createRequire(new URL("../packages/transport-imap/package.json", import.meta.url));
const imapflowDir = dirname(require.resolve("imapflow/package.json"));
const { ImapFlow } = (await import(
  pathToFileURL(join(imapflowDir, "dist/esm/imap-flow.js")).href
)) as typeof import("imapflow");

const MESSAGES = 2000;
/** This process's CPU time (user + system) since `since`, in ms: the clients' own work, not the server's. */
const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};
const ROUNDS = 41;
const USER = "support@contoso.com";
const DEADLINE_MS = 300_000;

if (!findDovecot()) {
  console.error(
    "[bench] Dovecot is not installed: apt-get install -y --no-install-recommends dovecot-core dovecot-imapd",
  );
  process.exit(2);
}
// The whole run stops itself if something hangs.
const watchdog = setTimeout(() => {
  console.error(`[bench] imap-fetch did not finish within ${DEADLINE_MS / 1000} s`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

const dataDir = await mkdtemp(join(tmpdir(), "bench-imap-fetch-"));
const emu = await startEmulatorProcess({ dataDir });
const server = emu.server;

try {
  const store = createMailStore({ root: dataDir });
  const t0 = performance.now();
  const filler = "The quick brown fox jumps over the lazy dog. ".repeat(200);
  for (let i = 0; i < MESSAGES; i++) {
    const text = filler.slice(0, 1000 + ((i * 7919) % 7000));
    const boundary = `b${i}`;
    const attachment =
      i % 10 === 0 ? randomBytes(30_000).toString("base64").replace(/.{76}/g, "$&\r\n") : undefined;
    const head = [
      `From: Customer ${i} <customer${i}@fabrikam.com>`,
      `To: Contoso Support <${USER}>`,
      `Subject: Ticket #${100_000 + i}: printer on floor ${i % 9} is jammed`,
      `Date: ${new Date(Date.now() - (MESSAGES - i) * 60_000).toUTCString()}`,
      `Message-ID: <bench-${i}@fabrikam.com>`,
      "MIME-Version: 1.0",
    ];
    const raw = attachment
      ? [
          ...head,
          `Content-Type: multipart/mixed; boundary="${boundary}"`,
          "",
          `--${boundary}`,
          "Content-Type: text/plain; charset=utf-8",
          "",
          text,
          `--${boundary}`,
          'Content-Type: application/octet-stream; name="log.bin"',
          "Content-Transfer-Encoding: base64",
          'Content-Disposition: attachment; filename="log.bin"',
          "",
          attachment,
          `--${boundary}--`,
          "",
        ]
      : [...head, "Content-Type: text/plain; charset=utf-8", "", text, ""];
    await store.deliver(USER, "inbox", Buffer.from(raw.join("\r\n")), { seen: i % 3 === 0 });
  }
  console.log(
    `[bench] delivered ${MESSAGES} messages through the store in ${Math.round(performance.now() - t0)} ms`,
  );

  const auth = ropcTokenProvider({
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    username: USER,
    password: DEMO_PASSWORD,
    cloud: emu.cloud,
    authorityHost: emu.authorityHost,
    ca: emu.caPem,
  });
  const ours = imapTransport({ auth, host: server.host, port: server.imapPort, ca: emu.caPem });
  const { token } = await auth.getAccessToken("outlook");
  const raw = new ImapFlow({
    host: server.host,
    port: server.imapPort,
    secure: true,
    tls: { ca: emu.caPem },
    auth: { user: USER, accessToken: token },
    logger: false,
  });
  raw.on("error", () => {});
  await raw.connect();

  const runOurs = async () => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    let count = 0;
    let bytes = 0;
    for await (const summary of ours.listMessages({ folder: "inbox", includeSource: true })) {
      count++;
      bytes += summary.source?.length ?? 0;
    }
    return { count, bytes, ms: performance.now() - start, cpuMs: cpuMs(cpu) };
  };
  const runRaw = async () => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    let count = 0;
    let bytes = 0;
    const lock = await raw.getMailboxLock("INBOX");
    try {
      // Exactly the items transport-imap fetches with includeSource (packages/transport-imap/src/summary.ts).
      for await (const message of raw.fetch("1:*", {
        uid: true,
        flags: true,
        size: true,
        internalDate: true,
        source: true,
      })) {
        count++;
        bytes += message.source?.length ?? 0;
      }
    } finally {
      lock.release();
    }
    return { count, bytes, ms: performance.now() - start, cpuMs: cpuMs(cpu) };
  };

  // Warm-up: Dovecot indexes the Maildir, both connections get signed in and INBOX selected.
  const warmOurs = await runOurs();
  const warmRaw = await runRaw();
  console.log(
    `[bench] warm-up: ours ${warmOurs.count} msgs in ${Math.round(warmOurs.ms)} ms, raw ${warmRaw.count} msgs in ${Math.round(warmRaw.ms)} ms`,
  );

  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  const oursRates: number[] = [];
  const rawRates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const oursFirst = round % 2 === 0;
    const first = oursFirst ? await runOurs() : await runRaw();
    const second = oursFirst ? await runRaw() : await runOurs();
    const [o, r] = oursFirst ? [first, second] : [second, first];
    if (o.count !== MESSAGES || r.count !== MESSAGES || o.bytes !== r.bytes) {
      throw new Error(
        `round ${round + 1}: ours saw ${o.count} msgs/${o.bytes} B, raw ${r.count} msgs/${r.bytes} B`,
      );
    }
    const oRate = (o.count / o.ms) * 1000;
    const rRate = (r.count / r.ms) * 1000;
    oursRates.push(oRate);
    rawRates.push(rRate);
    ratios.push(oRate / rRate);
    cpuRatios.push(r.cpuMs / o.cpuMs);
    console.log(
      `[bench] round ${round + 1} (${oursFirst ? "ours first" : "raw first"}): ours ${Math.round(oRate)} msgs/s, raw ${Math.round(rRate)} msgs/s, ${(o.bytes / 1e6).toFixed(1)} MB each, ratio ${(oRate / rRate).toFixed(3)}; client CPU ours ${Math.round(o.cpuMs)} ms, raw ${Math.round(r.cpuMs)} ms`,
    );
  }
  const quantile = (values: number[], q: number) =>
    [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * q)]!;
  const median = (values: number[]) => quantile(values, 0.5);
  console.log(
    `[bench] median: ours ${Math.round(median(oursRates))} msgs/s, raw ${Math.round(median(rawRates))} msgs/s (${MESSAGES} messages, UID + FLAGS + size + INTERNALDATE + source, both sides)`,
  );
  console.log(
    `[bench] ratio: median ${median(ratios).toFixed(3)}, interquartile range ${quantile(ratios, 0.25).toFixed(3)}–${quantile(ratios, 0.75).toFixed(3)}`,
  );

  await raw.logout();
  await ours.close();
  await auth.dispose();
  console.log(
    `[bench] client CPU per listing, raw ÷ ours: median ${median(cpuRatios).toFixed(3)}, interquartile range ${quantile(cpuRatios, 0.25).toFixed(3)}–${quantile(cpuRatios, 0.75).toFixed(3)}`,
  );
  console.log(
    `RESULT imap-fetch ratio=${median(ratios).toFixed(3)} cpu_ratio=${median(cpuRatios).toFixed(3)}`,
  );
} finally {
  await emu.stop();
  await rm(dataDir, { recursive: true, force: true });
}
