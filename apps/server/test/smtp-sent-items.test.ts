import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@m365-mail/core";
import {
  dovecotPart,
  findDovecot,
  graphPart,
  smtpPart,
  startTestEmulator as startEmulatorInTempDir,
} from "@m365-mail/emulator";
import { needs } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../src/api-keys.js";
import {
  ALICE,
  emulatorEnv,
  freePort,
  type ServerProcess,
  spawnServer,
  subjectsIn,
  type TestEmulator,
  waitFor,
} from "./helpers.js";

// Issue 12, item 2: with SMTP as the only sending transport, Sent Items are read over IMAP — Exchange
// files SMTP-submitted mail there too — so a send cut short by a crash is found, not sent twice.

// In CI a missing Dovecot fails the run instead of skipping (test-helpers' needs).
const hasDovecot = needs("dovecot", () => findDovecot() !== undefined);
let emu: TestEmulator;
let dir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  if (!hasDovecot) return;
  const graph = graphPart();
  const smtp = smtpPart();
  const emulator = await startEmulatorInTempDir({
    prefix: "m365-server-imap-emu-",
    parts: [graph, smtp, dovecotPart()],
    logger: silentLogger,
  });
  emu = { emulator, graph, smtp, dataDir: emulator.dataDir, stop: () => emulator.stop() };
  dir = await mkdtemp(join(tmpdir(), "m365-server-imap-"));
});
afterAll(async () => {
  await server?.kill();
  await emu?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it.skipIf(!hasDovecot)(
  "TRANSPORTS=smtp,imap: a send in flight when the server is SIGKILLed is found in Sent Items over IMAP, not sent again",
  { timeout: 120_000 },
  async () => {
    const key = generateApiKey();
    const port = await freePort();
    const env = {
      ...emulatorEnv(emu.emulator),
      M365_IMAP_HOST: emu.emulator.cloud.imap.host,
      M365_IMAP_PORT: String(emu.emulator.cloud.imap.port),
      PORT: String(port),
      API_KEYS: `imap:${hashApiKey(key)}`,
      TRANSPORTS: "smtp,imap",
      READ_VIA: "imap",
      WATCH_VIA: "off",
      RATE_LIMIT_PER_MINUTE: "0",
      OUTBOX_PATH: join(dir, "outbox.db"),
      OUTBOX_SENT_ITEMS_GRACE_MS: "6000",
    };
    server = await spawnServer(env);
    const url = `http://127.0.0.1:${port}`;
    const post = async (subject: string) => {
      const res = await fetch(`${url}/v1/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ to: ALICE, subject, text: subject, via: "smtp" }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    const stateOf = async (id: string) =>
      (await (
        await fetch(`${url}/v1/outbox/${id}`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as {
        state: string;
        transport?: string;
        attempts: number;
      };
    // Signed in and connected first, so that the send below reaches the emulator at once.
    const warm = await post("imap warm-up");
    await waitFor(async () => ((await stateOf(warm)).state === "sent" ? true : undefined), 30_000, "warm-up");

    // The emulator holds the message after DATA for 3 s, then delivers it; the server dies meanwhile.
    emu.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "delay", delayMs: 3000 });
    const id = await post("in flight over smtp");
    await waitFor(
      async () => ((await stateOf(id)).state === "sending" ? true : undefined),
      10_000,
      "sending",
    );
    await new Promise((r) => setTimeout(r, 1000));
    await server.kill();
    server = await spawnServer(env);

    const done = await waitFor(
      async () => {
        const entry = await stateOf(id);
        return entry.state === "queued" || entry.state === "sending" ? undefined : entry;
      },
      60_000,
      "a final state",
    );
    expect(done).toMatchObject({ state: "sent", transport: "sent-items" });
    expect(
      (await subjectsIn(emu.dataDir, ALICE, "inbox")).filter((s) => s === "in flight over smtp"),
    ).toHaveLength(1);
  },
);
