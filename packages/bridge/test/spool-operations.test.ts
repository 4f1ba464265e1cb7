/**
 * A person decides what becomes of a spooled message the bridge cannot settle alone: one that may have
 * reached Microsoft 365 (Graph answered 504) and whose Sent Items check failed for good is `uncertain`. The operator lists
 * the spool with the package's own bin (`m365-mail-bridge spool`, a separate process, as on a server),
 * then retries one — delivered, once — and discards another — never delivered.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import type { OutboxEntry } from "@m365-mail/outbox";
import { buildIfStale } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  collectingLogger,
  configFor,
  DEMO_PASSWORD,
  demoPasswordFile,
  deviceAccount,
  mailbox,
  run,
  sendEachToAlice,
  sendToAlice,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  startWebhookReceiver,
  waitFor,
} from "./bridge-env.js";

const root = join(import.meta.dirname, "..");
const bin = join(root, "dist", "bin.js");
let emulator: TestEmulator;
let bridge: Bridge;
let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;
const secret = `scanner-${randomBytes(6).toString("hex")}`;

beforeAll(async () => {
  buildIfStale({ root, output: "dist/bin.js" });
  emulator = await startSmtpEmulator();
  webhook = await startWebhookReceiver();
  const passwordFile = await demoPasswordFile(emulator, "scanner.password");
  bridge = await startTestBridge(
    emulator,
    {
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      metrics: { host: "127.0.0.1", port: 0 },
      webhookUrl: webhook.url,
      spool: {
        type: "sqlite",
        path: join(emulator.dataDir, "spool.db"),
        firstRetryMs: 50,
        sentItemsGraceSeconds: 1,
      },
      accounts: [await deviceAccount({ login: "scanner", secret, passwordFile })],
    },
    collectingLogger(),
  );
});
afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await webhook?.close();
  await emulator?.stop();
});
const postedFor = (id: string) => webhook.events.filter((e) => e.id === id);

const metricsUrl = () => `http://127.0.0.1:${bridge.addresses.find((a) => a.protocol === "metrics")!.port}`;
const cli = (...args: string[]) => run(process.execPath, [bin, "spool", ...args, "--url", metricsUrl()]);
const inbox = async (subject: string) =>
  (await mailbox(emulator, "alice@contoso.com")).filter((m) => m.subject === subject);

/**
 * A scan the spool cannot settle alone: Graph answers its send 504 (it may have been taken), then the
 * Sent Items check is refused (400) — the message must not be sent blind, so a person decides.
 */
async function uncertainScan(subject: string): Promise<OutboxEntry> {
  emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", times: 1 });
  emulator.admin.armFault({ target: "graph", path: "sentitems/messages", kind: "status400", times: 1 });
  const sent = await sendToAlice({ port: smtpPort(bridge), username: "scanner", password: secret, subject });
  expect(sent.stdout.trim(), sent.stdout).toBe("OK");
  return waitFor(async () => {
    const list = await cli("--state", "uncertain", "--json");
    return (JSON.parse(list.stdout) as OutboxEntry[]).find((m) => m.subject === subject);
  }, 20_000);
}

describe("m365-mail bridge spool", () => {
  it("lists an uncertain message with what to look for and what to run", async () => {
    const subject = `scan ${randomBytes(3).toString("hex")}`;
    const entry = await uncertainScan(subject);
    expect(entry).toMatchObject({ state: "uncertain", owner: "scanner", via: "graph" });
    // A person must decide: posted once, with what to look for.
    await waitFor(async () => postedFor(entry.id).length > 0);
    expect(postedFor(entry.id)).toEqual([
      expect.objectContaining({
        type: "spool-message-uncertain",
        account: "scanner",
        messageId: entry.messageId,
        subject,
      }),
    ]);
    const list = await cli();
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(`${entry.id}  uncertain  scanner  "${subject}"`);
    expect(list.stdout).toContain(`Message-ID ${entry.messageId}`);
    expect(list.stdout).toContain(`m365-mail bridge spool retry ${entry.id}`);
    expect(bridge.status().spool).toMatchObject({ uncertain: 1 });
    expect(await inbox(subject)).toHaveLength(0);

    // Not in Sent Items (Graph never took it): the operator retries, and it is delivered once.
    const retried = await cli("retry", entry.id);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toContain(`${entry.id}: queued to be sent now`);
    await waitFor(async () => (await inbox(subject)).length > 0, 15_000);
    await waitFor(async () => bridge.status().spool!.uncertain === 0 && bridge.status().spool!.queued === 0);
    expect(await inbox(subject)).toHaveLength(1);
  }, 60_000);

  it("discards an uncertain message: failed, DISCARDED, never delivered", async () => {
    const subject = `scan ${randomBytes(3).toString("hex")}`;
    const entry = await uncertainScan(subject);
    const discarded = await cli("discard", entry.id);
    expect(discarded.code, discarded.stderr).toBe(0);
    const failed = JSON.parse((await cli("--state", "failed", "--json")).stdout) as OutboxEntry[];
    expect(failed.find((m) => m.id === entry.id)).toMatchObject({ error: { code: "DISCARDED" } });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await inbox(subject)).toHaveLength(0);
    // The operator's own decision is not posted back as a failure.
    expect(postedFor(entry.id).map((e) => e.type)).toEqual(["spool-message-uncertain"]);
  }, 60_000);

  it("a message Microsoft 365 refuses for good is failed, and posted to the webhook once with the reason", async () => {
    const subject = `scan ${randomBytes(3).toString("hex")}`;
    emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status400", times: 1 });
    const sent = await sendToAlice({
      port: smtpPort(bridge),
      username: "scanner",
      password: secret,
      subject,
    });
    // The device was told 250 before the refusal: only the webhook (and the spool listing) can say so.
    expect(sent.stdout.trim()).toBe("OK");
    const event = await waitFor(async () =>
      webhook.events.find((e) => e.type === "spool-message-failed" && e.subject === subject),
    );
    expect(event).toMatchObject({
      account: "scanner",
      attempts: 1,
      error: { code: "MESSAGE_INVALID", message: expect.stringContaining("400") },
    });
    const failed = JSON.parse((await cli("--state", "failed", "--json")).stdout) as OutboxEntry[];
    expect(failed.find((m) => m.subject === subject)).toMatchObject({
      id: event.id,
      error: { code: "MESSAGE_INVALID" },
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(postedFor(event.id as string)).toHaveLength(1);
    expect(await inbox(subject)).toHaveLength(0);
  }, 60_000);

  it("says why it cannot: an unknown id, a message that is not uncertain, a bad state, no bridge", async () => {
    const unknown = await cli("retry", "no-such-id");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no-such-id/);
    const [sent] = JSON.parse((await cli("--state", "sent", "--json")).stdout) as OutboxEntry[];
    const notUncertain = await cli("discard", sent!.id);
    expect(notUncertain.code).toBe(1);
    expect(notUncertain.stderr).toMatch(/uncertain/);
    const badState = await cli("--state", "lost");
    expect(badState.code).toBe(2);
    expect(badState.stderr).toMatch(/state must be one of queued, sending, sent, failed, uncertain/);
    // Only the CLI's header makes a change: a web page's cross-site POST cannot send it.
    const bare = await fetch(`${metricsUrl()}/spool/${sent!.id}/discard`, { method: "POST" });
    expect(bare.status).toBe(403);
    const usage = await cli("retry");
    expect(usage.code).toBe(2);
    const nobody = await run(process.execPath, [bin, "spool", "--url", "http://127.0.0.1:9"]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain("no bridge answered at http://127.0.0.1:9/spool");
    expect(nobody.stderr).toContain("Is the bridge running");
  }, 30_000);
});

describe("m365-mail bridge spool: messages held while a person fixes the account", () => {
  // Its own bridge, whose first retry waits 30 s or more: what happens sooner is the operator's doing.
  let held: Bridge;
  let passwordFile: string;
  const erpSecret = `erp-${randomBytes(6).toString("hex")}`;
  const heldCli = (...args: string[]) =>
    run(process.execPath, [
      bin,
      "spool",
      ...args,
      "--url",
      `http://127.0.0.1:${held.addresses.find((a) => a.protocol === "metrics")!.port}`,
    ]);

  beforeAll(async () => {
    passwordFile = join(emulator.dataDir, "erp.password");
    // Changed in Entra, not in the bridge's file.
    await writeFile(passwordFile, "an-old-password\n", { mode: 0o600 });
    held = await startTestBridge(
      emulator,
      {
        listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
        metrics: { host: "127.0.0.1", port: 0 },
        spool: { type: "sqlite", path: join(emulator.dataDir, "held-spool.db"), firstRetryMs: 60_000 },
        accounts: [await deviceAccount({ login: "erp", secret: erpSecret, passwordFile })],
      },
      collectingLogger(),
    );
  });
  afterAll(async () => {
    await held?.close({ drainMs: 0 });
  });

  it("discards one before it is sent, and sends another at once when told, instead of at its next attempt", async () => {
    const tag = randomBytes(3).toString("hex");
    const [keep, drop] = [`invoice ${tag}`, `duplicate invoice ${tag}`];
    expect(
      await sendEachToAlice({
        port: smtpPort(held),
        username: "erp",
        password: erpSecret,
        subjects: [keep, drop],
      }),
    ).toEqual(["OK", "OK"]);
    // Both held, each with the reason and what the operator can do.
    const queued = await waitFor(async () => {
      const list = JSON.parse((await heldCli("--state", "queued", "--json")).stdout) as OutboxEntry[];
      return list.length === 2 && list.every((m) => m.error?.code === "CONFIG_INVALID") && list;
    }, 20_000);
    const idOf = (subject: string) => queued.find((m) => m.subject === subject)!.id;
    const listing = await heldCli();
    expect(listing.stdout).toContain(`m365-mail bridge spool retry ${idOf(keep)}`);
    expect(listing.stdout).toContain(`m365-mail bridge spool discard ${idOf(drop)}`);

    const discarded = await heldCli("discard", idOf(drop));
    expect(discarded.code, discarded.stderr).toBe(0);
    expect(discarded.stdout).toContain("the bridge will not send it");

    // The person puts the current password into the file and does not wait for the next attempt.
    await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
    const started = Date.now();
    const retried = await heldCli("retry", idOf(keep));
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toContain("queued to be sent now");
    await waitFor(async () => (await inbox(keep)).length > 0, 20_000);
    // Sooner than any backoff of this spool (the shortest is half of firstRetryMs).
    expect(Date.now() - started).toBeLessThan(30_000);
    const failed = JSON.parse((await heldCli("--state", "failed", "--json")).stdout) as OutboxEntry[];
    expect(failed.find((m) => m.id === idOf(drop))).toMatchObject({
      error: { code: "DISCARDED", message: expect.stringContaining("while queued") },
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await inbox(keep)).toHaveLength(1);
    expect(await inbox(drop)).toHaveLength(0);
  }, 60_000);
});

describe("spool: the person fixes the stored password and reloads the bridge", () => {
  it("the messages held for that account go out at once, not at their next attempt", async () => {
    const passwordFile = join(emulator.dataDir, "crm.password");
    await writeFile(passwordFile, "an-old-password\n", { mode: 0o600 });
    const crmSecret = `crm-${randomBytes(6).toString("hex")}`;
    const input = {
      listeners: [{ protocol: "smtp" as const, host: "127.0.0.1", port: 0, security: "plain" as const }],
      // The first retry waits 30 s or more: what happens sooner is the reload's doing.
      spool: {
        type: "sqlite" as const,
        path: join(emulator.dataDir, "reload-spool.db"),
        firstRetryMs: 60_000,
      },
      accounts: [await deviceAccount({ login: "crm", secret: crmSecret, passwordFile })],
    };
    const logger = collectingLogger();
    const crm = await startTestBridge(emulator, input, logger);
    try {
      // Refused at the start already: the problem is open before any device logs in.
      expect(crm.status().signInProblems.map((p) => p.account)).toEqual(["crm"]);
      const subjects = ["order 1", "order 2"].map((s) => `${s} ${randomBytes(3).toString("hex")}`);
      expect(
        await sendEachToAlice({ port: smtpPort(crm), username: "crm", password: crmSecret, subjects }),
      ).toEqual(["OK", "OK"]);
      await waitFor(async () => crm.status().spool!.queued === 2 && crm.status().spool!.sending === 0);

      await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
      const started = Date.now();
      await crm.reload(configFor(emulator, input));
      await crm.storedPasswordSignIns();
      expect(crm.status().signInProblems).toEqual([]);
      await waitFor(
        async () => (await Promise.all(subjects.map(inbox))).every((m) => m.length === 1),
        20_000,
      );
      // Sooner than any backoff of this spool (the shortest is half of firstRetryMs).
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(logger.lines.join("\n")).toContain("spool: 2 message(s) held for account crm go out now");
    } finally {
      await crm.close({ drainMs: 0 });
    }
  }, 60_000);
});
