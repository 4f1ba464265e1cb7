/**
 * `pnpm bench bridge`: what the bridge costs a client, against the same client talking XOAUTH2 to the
 * same emulator directly, in one run:
 *
 * - IMAP: `UID FETCH` (envelope, flags, size, INTERNALDATE, full source) of 2,000 messages in
 *   support@contoso.com, with imapflow on both sides — directly to the emulator's Dovecot over TLS with an
 *   access token, and through the bridge's IMAP relay with the password. One warm, signed-in connection
 *   each; 7 pairs of rounds after a warm-up each (Dovecot builds its index on the first pass).
 * - SMTP: 200 messages on one connection (nodemailer, one pooled connection) — directly to the emulator's
 *   SMTP (STARTTLS, XOAUTH2), and to the bridge's SMTP front door (password) whose account delivers over
 *   SMTP XOAUTH2 to the same emulator and answers `250` only after it accepted (`sync`). So the bridge side
 *   does the direct side's work plus its own: that is the cost measured, and on loopback its own (a whole
 *   SMTP transaction with the client, through the same libraries) costs about as much as the direct side's,
 *   so expect ~0.5–0.6. 3 pairs of rounds. For reference (in RESULT as smtp_pipe_ratio): 3 pairs of the direct client
 *   against itself through a bare TCP pipe proxy process (STARTTLS and XOAUTH2 end to end, so the pipe does
 *   no crypto: the price of the process hop alone, a ceiling for any bridge that is a process of its own),
 *   and 2 pairs with the emulator holding each end-of-data reply 20 ms for both sides alike (Exchange
 *   Online takes longer than that).
 *   The emulator's 30/minute limit is lifted and accepted mail goes to a sink (the Maildir would slow down
 *   over the run).
 * - POP3: `RETR` of 200 messages in alice@contoso.com, one at a time, with one small POP3 client on both
 *   sides (defined below; the only difference is AUTH XOAUTH2 vs USER/PASS). 31 pairs of rounds (single
 *   rounds scatter from ~0.6 to ~1.5 on a 2-core machine; 15 pairs still left the median moving by ±0.1).
 *   For reference (in RESULT as pop3_pipe_ratio) the same client also goes through a bare node:net → node:tls pipe proxy
 *   process: sequential RETRs pay each round trip's extra process hop, and this shows that hop's price.
 * - Login: connect + sign-in latency with a warm token (imapflow `connect()`: TCP/TLS, greeting,
 *   capabilities, AUTHENTICATE), 41 of each, alternating; p50 of each, overhead = bridge p50 − direct p50.
 *
 * Rounds come in pairs, one with direct first and one with the bridge first (whoever runs second is often
 * faster here); a pair's ratio is the geometric mean of its two rounds' bridge/direct throughput, and each
 * ratio printed is the median over the pairs, with its interquartile range. Every round checks
 * both sides moved the same messages and bytes.
 *
 * The bridge runs in a child process of its own (as `m365-mail bridge` does), started with `startBridge`
 * from the built package: plain-text listeners on 127.0.0.1 (a local bridge; its upstream is TLS), passthrough
 * accounts, the http token engine. The emulator (Entra, SMTP, the IMAP/POP3 front) runs in a process of
 * its own too (bench/lib/emulator-process.ts), as Microsoft 365 does for every client; Dovecot is its own.
 * Both sides' clients share this process.
 *
 * Ends with exactly one line:
 *   RESULT bridge imap_ratio=… smtp_ratio=… pop3_ratio=… login_p50_ms=… login_overhead_ms=… smtp_pipe_ratio=… pop3_pipe_ratio=…
 * The last two are the references above (the direct client through the bare pipe proxy, over direct):
 * what a process hop alone leaves of the floor on this machine, printed beside the ratios they bound.
 * `pnpm bench bridge smtp` (or imap, pop3, login; several allowed) runs only those parts, for working on
 * one of them, and prints no RESULT line.
 * Imports the built packages (`pnpm build` first). Needs Dovecot (see the emulator's README).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { encodeXOAuth2 } from "../packages/core/dist/index.js";
import { createMailStore, DEMO_PASSWORD, findDovecot } from "../packages/emulator/dist/index.js";
import { startEmulatorProcess } from "./lib/emulator-process.js";
import { startNodeChild } from "./lib/node-child.js";

// imapflow and nodemailer exactly as the transports resolve them.
const imapRequire = createRequire(new URL("../packages/transport-imap/package.json", import.meta.url));
const imapflowDir = dirname(imapRequire.resolve("imapflow/package.json"));
const { ImapFlow } = (await import(
  pathToFileURL(join(imapflowDir, "dist/esm/imap-flow.js")).href
)) as typeof import("imapflow");
const smtpRequire = createRequire(new URL("../packages/transport-smtp/package.json", import.meta.url));
const nodemailer = smtpRequire("nodemailer") as typeof import("nodemailer");

const IMAP_USER = "support@contoso.com";
const POP_USER = "alice@contoso.com";
const IMAP_MESSAGES = 2000;
const POP_MESSAGES = 200;
const SMTP_MESSAGES = 200;
/** Pairs of rounds (one direct-first, one bridge-first). */
const IMAP_PAIRS = 7;
const POP_PAIRS = 31;
const SMTP_PAIRS = 3;
/** The reference SMTP rounds' wait before each end-of-data reply, a stand-in for Exchange's. */
const EXCHANGE_DATA_MS = 20;
const LOGINS = 41;
const DEADLINE_MS = 420_000;
const PARTS = ["imap", "pop3", "login", "smtp"] as const;
const chosen = process.argv.slice(2);
for (const part of chosen) {
  if (!(PARTS as readonly string[]).includes(part)) {
    console.error(`usage: pnpm bench bridge [${PARTS.join("|")} ...]`);
    process.exit(2);
  }
}
const runs = (part: (typeof PARTS)[number]) => chosen.length === 0 || chosen.includes(part);

if (!findDovecot()) {
  console.error(
    "[bench] Dovecot is not installed: apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d",
  );
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.error(`[bench] bridge did not finish within ${DEADLINE_MS / 1000} s`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * q)]!;
const median = (values: number[]) => quantile(values, 0.5);
const iqr = (values: number[]) => `${quantile(values, 0.25).toFixed(3)}–${quantile(values, 0.75).toFixed(3)}`;
const log = (text: string) => console.log(`[bench] ${text}`);

/**
 * Runs `direct` and `bridge` in pairs of rounds — one with direct first, one with the bridge first — and
 * returns each pair's ratio: the geometric mean of its two rounds' bridge/direct rates. Whoever runs second
 * in a round is often faster here (warm caches, a neighbour's burst ending), and a pair cancels that.
 */
async function compare(
  name: string,
  pairs: number,
  direct: () => Promise<{ count: number; bytes: number; ms: number }>,
  bridge: () => Promise<{ count: number; bytes: number; ms: number }>,
): Promise<number[]> {
  const ratios: number[] = [];
  const directRates: number[] = [];
  const bridgeRates: number[] = [];
  for (let round = 0; round < pairs * 2; round++) {
    const directFirst = round % 2 === 0;
    const first = directFirst ? await direct() : await bridge();
    const second = directFirst ? await bridge() : await direct();
    const [d, b] = directFirst ? [first, second] : [second, first];
    if (d.count !== b.count || d.bytes !== b.bytes) {
      throw new Error(
        `${name} round ${round + 1}: direct ${d.count} msgs/${d.bytes} B, bridge ${b.count} msgs/${b.bytes} B`,
      );
    }
    const dRate = (d.count / d.ms) * 1000;
    const bRate = (b.count / b.ms) * 1000;
    directRates.push(dRate);
    bridgeRates.push(bRate);
    log(
      `${name} round ${round + 1} (${directFirst ? "direct first" : "bridge first"}): direct ${Math.round(dRate)} msgs/s, bridge ${Math.round(bRate)} msgs/s, ${(d.bytes / 1e6).toFixed(2)} MB each, ratio ${(bRate / dRate).toFixed(3)}`,
    );
    if (!directFirst) {
      const r1 = bridgeRates[round - 1]! / directRates[round - 1]!;
      ratios.push(Math.sqrt(r1 * (bRate / dRate)));
    }
  }
  log(
    `${name}: median direct ${Math.round(median(directRates))} msgs/s, bridge ${Math.round(median(bridgeRates))} msgs/s; pair ratio median ${median(ratios).toFixed(3)}, interquartile range ${iqr(ratios)}`,
  );
  return ratios;
}

/** The bridge in a process of its own: `startBridge` from the built package, config on stdin, addresses on stdout. */
async function startBridgeProcess(config: unknown, env: Record<string, string>) {
  const dist = pathToFileURL(
    fileURLToPath(new URL("../packages/bridge/dist/index.js", import.meta.url)),
  ).href;
  const script = `
import { startBridge, validateBridgeConfig, startImapFrontDoor, startPop3FrontDoor } from ${JSON.stringify(dist)};
const { config, env } = JSON.parse(process.argv[1]);
const quiet = { debug() {}, info() {}, warn: (m) => console.error("[bridge] " + m), error: (m) => console.error("[bridge] " + m) };
const bridge = await startBridge(validateBridgeConfig(config, env), {
  logger: quiet,
  env,
  relays: { imap: startImapFrontDoor, pop3: startPop3FrontDoor },
});
console.log(JSON.stringify(bridge.addresses));
process.on("SIGTERM", () => bridge.close().then(() => process.exit(0)));
// The bench's IPC channel: when the bench exits (even killed by its watchdog), so does the bridge.
process.on("disconnect", () => process.exit(0));
`;
  const child = await startNodeChild<{ protocol: string; port: number }[]>("bridge", script, {
    config,
    env,
  });
  const port = (protocol: string) => child.ready.find((a) => a.protocol === protocol)!.port;
  return { imap: port("imap"), pop3: port("pop3"), smtp: port("smtp"), stop: child.stop };
}

/**
 * For reference only (the *_pipe_ratio keys, no floor): ten lines of node:net → node:tls `pipe()` in a process of their own,
 * no sign-in logic — what any relay process costs per round trip, to tell the bridge's own cost from the hop's.
 */
async function startBareProxy(upstream: { host: string; port: number; ca?: string }) {
  const script = `
import net from "node:net";
import tls from "node:tls";
const o = JSON.parse(process.argv[1]);
const server = net.createServer((c) => {
  c.setNoDelay(true);
  const u = o.ca ? tls.connect({ host: o.host, port: o.port, ca: o.ca }) : net.connect({ host: o.host, port: o.port });
  u.setNoDelay(true);
  c.pipe(u);
  u.pipe(c);
  c.on("error", () => u.destroy());
  u.on("error", () => c.destroy());
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
process.on("disconnect", () => process.exit(0));
`;
  const child = await startNodeChild<number>("bare proxy", script, upstream);
  return { port: child.ready, stop: child.stop };
}

/** A small POP3 client: the same code on both sides, only the sign-in differs. */
class BenchPop3 {
  private buffer: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.wake?.();
    });
    socket.on("close", () => this.wake?.());
  }

  static async open(port: number, ca?: string): Promise<BenchPop3> {
    const socket = ca ? tlsConnect({ host: "127.0.0.1", port, ca }) : netConnect({ host: "127.0.0.1", port });
    await new Promise((resolve, reject) => {
      socket.once(ca ? "secureConnect" : "connect", resolve);
      socket.once("error", reject);
    });
    socket.setNoDelay(true);
    const client = new BenchPop3(socket);
    await client.status();
    return client;
  }

  private async until(find: () => number): Promise<Buffer> {
    for (;;) {
      const end = find();
      if (end >= 0) {
        const out = this.buffer.subarray(0, end);
        this.buffer = this.buffer.subarray(end);
        return out;
      }
      if (this.socket.destroyed) throw new Error("POP3 connection closed");
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async status(): Promise<string> {
    const line = (
      await this.until(() => (this.buffer.indexOf("\r\n") >= 0 ? this.buffer.indexOf("\r\n") + 2 : -1))
    ).toString();
    return line;
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    const answer = await this.status();
    if (answer.startsWith("-ERR")) throw new Error(`POP3 ${line.split(" ")[0]}: ${answer.trim()}`);
    return answer;
  }

  /** RETR n: the message's bytes as sent (dot-stuffed, up to the final dot). */
  async retr(n: number): Promise<Buffer> {
    await this.command(`RETR ${n}`);
    let from = 0;
    return this.until(() => {
      const at = this.buffer.indexOf("\r\n.\r\n", Math.max(0, from - 4));
      from = this.buffer.length;
      return at >= 0 ? at + 5 : -1;
    });
  }

  async xoauth2(user: string, token: string): Promise<void> {
    const go = await this.command("AUTH XOAUTH2");
    if (!go.startsWith("+")) throw new Error(`AUTH XOAUTH2: ${go}`);
    await this.command(encodeXOAuth2(user, token));
  }

  async userPass(user: string, password: string): Promise<void> {
    await this.command(`USER ${user}`);
    await this.command(`PASS ${password}`);
  }

  async quit(): Promise<void> {
    await this.command("QUIT").catch(() => undefined);
    this.socket.destroy();
  }
}

const dataDir = await mkdtemp(join(tmpdir(), "bench-bridge-"));
// Exchange's limits as the bench needs them: no 30 messages a minute, and the direct client's connection
// beside the bridge's pool of 3.
const emu = await startEmulatorProcess({
  dataDir,
  smtpSink: { messagesPerWindow: 0, maxConnectionsPerMailbox: 4 },
});
const server = emu.server;
/** The emulator's admin API (loopback only), e.g. to arm a fault. */
const emulatorAdmin = (method: string, path: string, body?: unknown) =>
  new Promise<void>((resolve, reject) => {
    const req = httpsRequest(new URL(path, emu.authorityHost), {
      method,
      ca: emu.caPem,
      headers: body === undefined ? {} : { "content-type": "application/json" },
    });
    req.once("response", (res) => {
      res.resume();
      res.once("end", () =>
        (res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${method} ${path}: ${res.statusCode}`)),
      );
    });
    req.once("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
let bridge: Awaited<ReturnType<typeof startBridgeProcess>> | undefined;

try {
  // The mail: 2,000 messages for IMAP (as bench/imap-fetch.ts), 200 for POP3.
  const store = createMailStore({ root: dataDir });
  const t0 = performance.now();
  const filler = "The quick brown fox jumps over the lazy dog. ".repeat(200);
  const mail = (i: number, to: string) => {
    const text = filler.slice(0, 1000 + ((i * 7919) % 7000));
    const attachment =
      i % 10 === 0 ? randomBytes(30_000).toString("base64").replace(/.{76}/g, "$&\r\n") : undefined;
    const head = [
      `From: Customer ${i} <customer${i}@fabrikam.com>`,
      `To: <${to}>`,
      `Subject: Ticket #${100_000 + i}: printer on floor ${i % 9} is jammed`,
      `Date: ${new Date(Date.now() - (IMAP_MESSAGES - i) * 60_000).toUTCString()}`,
      `Message-ID: <bench-${to}-${i}@fabrikam.com>`,
      "MIME-Version: 1.0",
    ];
    const raw = attachment
      ? [
          ...head,
          `Content-Type: multipart/mixed; boundary="b${i}"`,
          "",
          `--b${i}`,
          "Content-Type: text/plain; charset=utf-8",
          "",
          text,
          `--b${i}`,
          'Content-Type: application/octet-stream; name="log.bin"',
          "Content-Transfer-Encoding: base64",
          "",
          attachment,
          `--b${i}--`,
          "",
        ]
      : [...head, "Content-Type: text/plain; charset=utf-8", "", text, ""];
    return Buffer.from(raw.join("\r\n"));
  };
  for (let i = 0; i < IMAP_MESSAGES; i++)
    await store.deliver(IMAP_USER, "inbox", mail(i, IMAP_USER), { seen: i % 3 === 0 });
  for (let i = 0; i < POP_MESSAGES; i++) await store.deliver(POP_USER, "inbox", mail(i, POP_USER));
  log(
    `delivered ${IMAP_MESSAGES} + ${POP_MESSAGES} messages through the store in ${Math.round(performance.now() - t0)} ms`,
  );

  const provider = (username: string) =>
    ropcTokenProvider({
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      username,
      password: DEMO_PASSWORD,
      cloud: emu.cloud,
      authorityHost: emu.authorityHost,
      ca: emu.caPem,
      engine: "http",
    });
  const imapAuth = provider(IMAP_USER);
  const popAuth = provider(POP_USER);

  bridge = await startBridgeProcess(
    {
      dataDir: join(dataDir, "bridge"),
      // The SMTP delivery's own 30/minute limit (Exchange's) is lifted like the emulator's.
      m365: {
        engine: "http",
        caFile: emu.caPath,
        smtp: { host: emu.cloud.smtp.host, port: emu.cloud.smtp.port, maxMessagesPerMinute: 0 },
      },
      listeners: [
        { protocol: "imap", host: "127.0.0.1", port: 0, security: "plain" },
        { protocol: "pop3", host: "127.0.0.1", port: 0, security: "plain" },
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
      ],
      accounts: [
        { credentials: { mode: "passthrough", username: IMAP_USER }, delivery: "smtp", answer: "sync" },
        { credentials: { mode: "passthrough", username: POP_USER } },
      ],
      logLevel: "warn",
    },
    emu.env(),
  );
  log(`bridge process listening: imap ${bridge.imap}, pop3 ${bridge.pop3}, smtp ${bridge.smtp}`);

  let imapRatios: number[] = [];
  let pop3Ratios: number[] = [];
  let smtpRatios: number[] = [];
  // The bare pipe proxy references: the ceiling any relay process reaches here (in RESULT, marked _pipe_).
  let pop3PipeRatios: number[] = [];
  let smtpPipeRatios: number[] = [];
  let loginDirectP50 = 0;
  let loginBridgeP50 = 0;
  /** imapflow to the emulator (XOAUTH2, the cached token) or to the bridge (the password), not yet connected. */
  const imapClient = async (direct: boolean) => {
    const client = direct
      ? new ImapFlow({
          host: server.host,
          port: server.imapPort,
          secure: true,
          tls: { ca: emu.caPem },
          auth: { user: IMAP_USER, accessToken: (await imapAuth.getAccessToken("outlook")).token },
          logger: false,
        })
      : new ImapFlow({
          host: "127.0.0.1",
          port: bridge!.imap,
          secure: false,
          auth: { user: IMAP_USER, pass: DEMO_PASSWORD },
          logger: false,
        });
    client.on("error", () => {});
    return client;
  };
  if (runs("imap")) {
    // --- IMAP UID FETCH of 2,000 messages ---------------------------------------------------------------
    const imapDirect = await imapClient(true);
    const imapBridge = await imapClient(false);
    for (const c of [imapDirect, imapBridge]) await c.connect();
    const fetchAll = (client: InstanceType<typeof ImapFlow>) => async () => {
      const start = performance.now();
      let count = 0;
      let bytes = 0;
      const lock = await client.getMailboxLock("INBOX");
      try {
        for await (const message of client.fetch(
          "1:*",
          { uid: true, envelope: true, flags: true, size: true, internalDate: true, source: true },
          { uid: true },
        )) {
          count++;
          bytes += message.source?.length ?? 0;
        }
      } finally {
        lock.release();
      }
      return { count, bytes, ms: performance.now() - start };
    };
    const warmDirect = await fetchAll(imapDirect)();
    const warmBridge = await fetchAll(imapBridge)();
    log(
      `imap warm-up: direct ${warmDirect.count} msgs in ${Math.round(warmDirect.ms)} ms, bridge ${warmBridge.count} in ${Math.round(warmBridge.ms)} ms`,
    );
    if (warmDirect.count !== IMAP_MESSAGES)
      throw new Error(`IMAP saw ${warmDirect.count} messages, not ${IMAP_MESSAGES}`);
    imapRatios = await compare("imap", IMAP_PAIRS, fetchAll(imapDirect), fetchAll(imapBridge));
    await imapDirect.logout();
    await imapBridge.logout();
  }

  if (runs("pop3")) {
    // --- POP3 RETR of 200 messages ------------------------------------------------------------------------
    const popToken = (await popAuth.getAccessToken("outlook")).token;
    const retrAll = (open: () => Promise<BenchPop3>) => async () => {
      const client = await open();
      const start = performance.now();
      let bytes = 0;
      for (let n = 1; n <= POP_MESSAGES; n++) bytes += (await client.retr(n)).length;
      const ms = performance.now() - start;
      await client.quit();
      return { count: POP_MESSAGES, bytes, ms };
    };
    const popDirect = retrAll(async () => {
      const c = await BenchPop3.open(server.pop3Port, emu.caPem);
      await c.xoauth2(POP_USER, popToken);
      return c;
    });
    const popBridge = retrAll(async () => {
      const c = await BenchPop3.open(bridge!.pop3);
      await c.userPass(POP_USER, DEMO_PASSWORD);
      return c;
    });
    await popDirect();
    await popBridge();
    pop3Ratios = await compare("pop3", POP_PAIRS, popDirect, popBridge);
    // Reference: the same client with XOAUTH2 through a bare pipe proxy process (the hop without the bridge).
    const bare = await startBareProxy({ host: server.host, port: server.pop3Port, ca: emu.caPem });
    try {
      const popBare = retrAll(async () => {
        const c = await BenchPop3.open(bare.port);
        await c.xoauth2(POP_USER, popToken);
        return c;
      });
      await popBare();
      pop3PipeRatios = await compare("pop3 via a bare pipe proxy (reference)", 15, popDirect, popBare);
    } finally {
      await bare.stop();
    }
  }

  if (runs("login")) {
    // --- connect + login latency with a warm token ----------------------------------------------------------
    const loginOnce = async (direct: boolean) => {
      const start = performance.now();
      const client = await imapClient(direct);
      await client.connect();
      const ms = performance.now() - start;
      await client.logout();
      return ms;
    };
    for (let i = 0; i < 3; i++) {
      await loginOnce(true);
      await loginOnce(false);
    }
    const directLogins: number[] = [];
    const bridgeLogins: number[] = [];
    for (let i = 0; i < LOGINS; i++) {
      if (i % 2 === 0) {
        directLogins.push(await loginOnce(true));
        bridgeLogins.push(await loginOnce(false));
      } else {
        bridgeLogins.push(await loginOnce(false));
        directLogins.push(await loginOnce(true));
      }
    }
    loginDirectP50 = median(directLogins);
    loginBridgeP50 = median(bridgeLogins);
    log(
      `login: direct p50 ${loginDirectP50.toFixed(1)} ms (p90 ${quantile(directLogins, 0.9).toFixed(1)}), bridge p50 ${loginBridgeP50.toFixed(1)} ms (p90 ${quantile(bridgeLogins, 0.9).toFixed(1)}), ${LOGINS} each`,
    );
  }

  if (runs("smtp")) {
    // --- SMTP: 200 messages on one connection --------------------------------------------------------------
    const smtpHost = emu.cloud.smtp;
    const smtpToken = (await imapAuth.getAccessToken("outlook")).token;
    const sendAll =
      (direct: boolean, messages = SMTP_MESSAGES, directPort = smtpHost.port) =>
      async () => {
        const transporter = nodemailer.createTransport(
          direct
            ? {
                host: smtpHost.host,
                port: directPort,
                secure: false,
                requireTLS: true,
                tls: { ca: emu.caPem },
                auth: { type: "OAuth2", user: IMAP_USER, accessToken: smtpToken },
                pool: true,
                maxConnections: 1,
                maxMessages: Number.POSITIVE_INFINITY,
              }
            : {
                host: "127.0.0.1",
                port: bridge!.smtp,
                secure: false,
                ignoreTLS: true,
                auth: { user: IMAP_USER, pass: DEMO_PASSWORD },
                pool: true,
                maxConnections: 1,
                maxMessages: Number.POSITIVE_INFINITY,
              },
        );
        const body = filler.slice(0, 2000);
        await transporter.verify();
        const start = performance.now();
        const sent = await Promise.all(
          Array.from({ length: messages }, (_, i) =>
            transporter.sendMail({ from: IMAP_USER, to: POP_USER, subject: `bench ${i}`, text: body }),
          ),
        );
        const ms = performance.now() - start;
        transporter.close();
        const accepted = sent.filter((s) => s.accepted.length === 1).length;
        return { count: accepted, bytes: accepted * body.length, ms };
      };
    await sendAll(true)();
    // The bridge's delivery must not hold to Exchange's 30 messages a minute here, or this is no comparison:
    // 40 messages that take more than 20 s mean m365.smtp.maxMessagesPerMinute was not applied.
    const limited = await Promise.race([
      sendAll(false, 40)().then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 20_000).unref()),
    ]);
    if (limited) {
      throw new Error(
        "the bridge's SMTP delivery is rate-limited (30 messages a minute: m365.smtp.maxMessagesPerMinute not applied)",
      );
    }
    smtpRatios = await compare("smtp", SMTP_PAIRS, sendAll(true), sendAll(false));
    // Reference: the same direct client (STARTTLS, XOAUTH2) through a bare TCP pipe proxy process.
    const bareSmtp = await startBareProxy({ host: smtpHost.host, port: smtpHost.port });
    try {
      smtpPipeRatios = await compare(
        "smtp via a bare pipe proxy (reference)",
        SMTP_PAIRS,
        sendAll(true),
        sendAll(true, SMTP_MESSAGES, bareSmtp.port),
      );
    } finally {
      await bareSmtp.stop();
    }
    // Reference (not in RESULT): the same rounds with the emulator holding each end-of-data reply
    // 20 ms, for both sides alike — Exchange Online takes longer than that to accept a message.
    const slowed = (run: () => Promise<{ count: number; bytes: number; ms: number }>) => async () => {
      await emulatorAdmin("POST", "/_admin/faults", {
        target: "smtp",
        path: "/data",
        kind: "delay",
        delayMs: EXCHANGE_DATA_MS,
        times: SMTP_MESSAGES,
      });
      try {
        return await run();
      } finally {
        await emulatorAdmin("DELETE", "/_admin/faults");
      }
    };
    await compare(
      `smtp with ${EXCHANGE_DATA_MS} ms before each end-of-data reply (reference)`,
      2,
      slowed(sendAll(true)),
      slowed(sendAll(false)),
    );
  }

  await imapAuth.dispose();
  await popAuth.dispose();
  await bridge.stop();
  bridge = undefined;
  if (chosen.length > 0) {
    log(`ran only ${chosen.join(", ")}: no RESULT line`);
  } else {
    console.log(
      `RESULT bridge imap_ratio=${median(imapRatios).toFixed(3)} smtp_ratio=${median(smtpRatios).toFixed(3)} pop3_ratio=${median(pop3Ratios).toFixed(3)} login_p50_ms=${loginBridgeP50.toFixed(1)} login_overhead_ms=${(loginBridgeP50 - loginDirectP50).toFixed(1)} smtp_pipe_ratio=${median(smtpPipeRatios).toFixed(3)} pop3_pipe_ratio=${median(pop3PipeRatios).toFixed(3)}`,
    );
  }
} finally {
  await bridge?.stop();
  await emu.stop();
  await rm(dataDir, { recursive: true, force: true });
}
