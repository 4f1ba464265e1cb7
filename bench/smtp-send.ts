/**
 * `pnpm bench smtp-send`: 500 messages through @m365-mail/transport-smtp against the emulator's SMTP part,
 * and the same 500 through raw pooled nodemailer, in the same run; then the naive way for 50 messages.
 *
 * What is compared, and why it is fair: ours and raw send the same messages to the same server with the
 * same limits — 3 pooled connections (Exchange's per-mailbox limit), STARTTLS, AUTH XOAUTH2 with a token
 * from the same provider, Exchange's checks — with the emulator's 30/minute limit lifted and our
 * client-side limiter off (maxMessagesPerMinute: 0), accepted mail not written to the mail store (its cost
 * grows over a run and is not the client's). Eight rounds run both back to back (one pool at a time: the 3
 * connections are per mailbox), alternating who goes first, after an unmeasured round of each (JIT); the
 * ratio is the median of the rounds' ours/raw. The naive baseline is what a script without this library
 * does: for every message a password grant (a new token provider, so nothing is cached), a new connection
 * and AUTH, awaited one after the other — checked: one password grant per message.
 *
 * A RESULT line is printed only when the emulator accepted every message sent and no more than 3
 * connections of the mailbox were ever open at once; otherwise the run exits 1 without one.
 * Ends with exactly one line: RESULT smtp-send ratio=<ours/raw msgs per second> naive_ratio=<ours/naive>
 * Imports the built packages (`pnpm bench` builds them first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { DEMO_PASSWORD, smtpPart, startEmulator } from "../packages/emulator/dist/index.js";
import { smtpTransport } from "../packages/transport-smtp/dist/index.js";

// nodemailer as transport-smtp resolves it: the same version on both sides.
const require = createRequire(new URL("../packages/transport-smtp/package.json", import.meta.url));
const nodemailer = require("nodemailer") as typeof import("nodemailer");

const MESSAGES = 500;
const NAIVE_MESSAGES = 50;
const WARMUP = 20;
const ROUNDS = 8;
const CONNECTIONS = 3; // Exchange: 3 per mailbox
const DEADLINE_MS = 240_000; // the whole run stops itself after this
const SENDER = "support@contoso.com";
const RECIPIENT = "alice@contoso.com";

const deadline = setTimeout(() => {
  console.error(`[bench] smtp-send did not finish within ${DEADLINE_MS / 1000} s`);
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();

const dataDir = await mkdtemp(join(tmpdir(), "bench-smtp-send-"));
// A sink that keeps nothing instead of the Maildir store: the store counts a folder's files on every
// delivery, so its cost grows over the run and would drown the client-side difference measured here.
const smtp = smtpPart({ limits: { messagesPerWindow: 0 }, store: { deliver: async () => undefined } });
const emu = await startEmulator({ dataDir, parts: [smtp] });
const signIn = () =>
  ropcTokenProvider({
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    username: SENDER,
    password: DEMO_PASSWORD,
    cloud: emu.cloud,
    authorityHost: emu.authorityHost,
    ca: emu.caPem,
  });
const provider = signIn();

const message = (i: number, who: string) => ({
  from: SENDER,
  to: RECIPIENT,
  subject: `bench ${who} ${i}`,
  text: `Message ${i} of the smtp-send benchmark.\n`.repeat(20),
});

/** Sends `count` messages at once (the pool queues them) and returns messages per second. */
async function rate(count: number, who: string, send: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => send(i)));
  const seconds = (performance.now() - started) / 1000;
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length > 0)
    throw new Error(`${who}: ${failed.length} of ${count} sends failed: ${failed[0]!.reason}`);
  return count / seconds;
}

let exitCode = 0;
try {
  const { token } = await provider.getAccessToken("outlook");
  const makeOurs = () =>
    smtpTransport({ auth: provider, ca: emu.caPem, maxConnections: CONNECTIONS, maxMessagesPerMinute: 0 });
  const makeRaw = () =>
    nodemailer.createTransport({
      pool: true,
      maxConnections: CONNECTIONS,
      maxMessages: 1000,
      host: emu.cloud.smtp.host,
      port: emu.cloud.smtp.port,
      secure: false,
      requireTLS: true,
      tls: { ca: emu.caPem },
      auth: { type: "OAuth2", user: SENDER, accessToken: token },
    });
  // Exchange's 3 connections are per mailbox: one pool at a time, the other closed and gone.
  const drained = async () => {
    for (let i = 0; i < 500 && (smtp.stats().open[SENDER] ?? 0) > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
  };

  const oursRates: number[] = [];
  const rawRates: number[] = [];
  const runRaw = async (round: number) => {
    const raw = makeRaw();
    // Warm each pool (connections, sign-in, JIT) before measuring.
    await rate(WARMUP, "raw warm-up", (i) => raw.sendMail(message(i, "warm")));
    rawRates.push(await rate(MESSAGES, "raw nodemailer", (i) => raw.sendMail(message(i, `raw${round}`))));
    raw.close();
    await drained();
  };
  const runOurs = async (round: number) => {
    const ours = makeOurs();
    await rate(WARMUP, "ours warm-up", (i) => ours.send(message(i, "warm")));
    oursRates.push(await rate(MESSAGES, "transport-smtp", (i) => ours.send(message(i, `ours${round}`))));
    await ours.close();
    await drained();
  };
  // One unmeasured round of each first: the JIT settles (the rates climb for a while otherwise).
  await runRaw(-1);
  await runOurs(-1);
  rawRates.length = 0;
  oursRates.length = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate who goes first, so that neither always meets a colder or fuller mail store.
    if (round % 2 === 0) {
      await runRaw(round);
      await runOurs(round);
    } else {
      await runOurs(round);
      await runRaw(round);
    }
  }

  // Naive: a password grant, a new connection and AUTH for every message, one after the other.
  const passwordGrants = () => emu.admin.counts()["entra.token.password"] ?? 0;
  const grantsBefore = passwordGrants();
  const naiveStarted = performance.now();
  for (let i = 0; i < NAIVE_MESSAGES; i++) {
    const fresh = signIn();
    const { token: t } = await fresh.getAccessToken("outlook");
    await fresh.dispose();
    const once = nodemailer.createTransport({
      host: emu.cloud.smtp.host,
      port: emu.cloud.smtp.port,
      secure: false,
      requireTLS: true,
      tls: { ca: emu.caPem },
      auth: { type: "OAuth2", user: SENDER, accessToken: t },
    });
    await once.sendMail(message(i, "naive"));
    once.close();
  }
  const naiveRate = NAIVE_MESSAGES / ((performance.now() - naiveStarted) / 1000);
  const naiveGrants = passwordGrants() - grantsBefore;
  if (naiveGrants !== NAIVE_MESSAGES) {
    throw new Error(`the naive run made ${naiveGrants} password grants for ${NAIVE_MESSAGES} messages`);
  }

  const counts = emu.admin.counts();
  const expected = 2 * (ROUNDS + 1) * (WARMUP + MESSAGES) + NAIVE_MESSAGES;
  const oursBest = Math.max(...oursRates);
  const rawBest = Math.max(...rawRates);
  // Each round's two runs are back to back, so they share the machine's load: compare within rounds.
  const roundRatios = oursRates.map((r, i) => r / rawRates[i]!).sort((a, b) => a - b);
  const mid = roundRatios.length / 2;
  const ratio =
    roundRatios.length % 2 ? roundRatios[Math.floor(mid)]! : (roundRatios[mid - 1]! + roundRatios[mid]!) / 2;
  const peak = counts[`smtp.connections.peak:${SENDER}`] ?? 0;
  console.log(`messages accepted by the emulator: ${counts["smtp.messages"]} of ${expected}`);
  console.log(`peak connections for ${SENDER}: ${peak} (limit ${CONNECTIONS})`);
  console.log(
    `transport-smtp : ${oursRates.map((r) => r.toFixed(0)).join(", ")} msg/s (best ${oursBest.toFixed(0)})`,
  );
  console.log(
    `raw nodemailer : ${rawRates.map((r) => r.toFixed(0)).join(", ")} msg/s (best ${rawBest.toFixed(0)})`,
  );
  console.log(
    `naive          : ${naiveRate.toFixed(1)} msg/s (${NAIVE_MESSAGES} messages, password grant + connection + AUTH each)`,
  );
  console.log(
    `ours/raw per round: ${roundRatios.map((r) => r.toFixed(2)).join(", ")} (median ${ratio.toFixed(2)})`,
  );
  if (counts["smtp.messages"] !== expected || peak > CONNECTIONS) {
    // No RESULT: a figure from a run that lost messages or broke Exchange's limit would mislead.
    console.error(
      `[bench] no result: the emulator accepted ${counts["smtp.messages"] ?? 0} of ${expected} messages, peak ${peak} connections (limit ${CONNECTIONS})`,
    );
    exitCode = 1;
  } else {
    const oursMedian = [...oursRates].sort((a, b) => a - b)[Math.floor(oursRates.length / 2)]!;
    console.log(
      `RESULT smtp-send ratio=${ratio.toFixed(2)} naive_ratio=${(oursMedian / naiveRate).toFixed(2)}`,
    );
  }
} catch (error) {
  console.error("[bench] smtp-send failed:", error);
  exitCode = 1;
} finally {
  await provider.dispose();
  await emu.stop();
  await rm(dataDir, { recursive: true, force: true });
  clearTimeout(deadline);
}
process.exit(exitCode);
