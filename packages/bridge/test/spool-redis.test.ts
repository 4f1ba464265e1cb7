/**
 * The spool on Redis, as a fleet runs it: two bridges share one Redis outbox (and token cache), each
 * message a device hands to either of them is delivered once. While Redis is down, a device gets a 451
 * that names the spool — at once, not after its own timeout — and keeps the message; once Redis is back,
 * the same send goes through.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  collectingLogger,
  demoPasswordFile,
  deviceAccount,
  mailbox,
  sendToAlice,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  startWebhookReceiver,
  waitFor,
} from "./bridge-env.js";

describe.skipIf(!needs("redis"))("spool on Redis (a fleet of bridges)", () => {
  let emulator: TestEmulator;
  let redis: TestRedis;
  const bridges: Bridge[] = [];
  let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const secret = `scanner-${randomBytes(6).toString("hex")}`;

  beforeAll(async () => {
    [emulator, redis] = await Promise.all([
      startSmtpEmulator(),
      startRedis({ prefix: "m365-bridge-spool-" }),
    ]);
    webhook = await startWebhookReceiver();
    const passwordFile = await demoPasswordFile(emulator, "scanner.password");
    const keyFile = join(emulator.dataDir, "fleet-cache.key");
    await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
    for (let i = 0; i < 2; i++) {
      bridges.push(
        await startTestBridge(
          emulator,
          {
            listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
            tokenCache: { type: "redis", url: redis.url, keyFile },
            spool: { type: "redis", url: redis.url, firstRetryMs: 50 },
            webhookUrl: webhook.url,
            accounts: [await deviceAccount({ login: "scanner", secret, passwordFile })],
          },
          collectingLogger(),
        ),
      );
    }
  });
  afterAll(async () => {
    for (const bridge of bridges) await bridge.close({ drainMs: 0 });
    await webhook?.close();
    await redis?.stop();
    await emulator?.stop();
  });

  const inbox = async (subject: string) =>
    (await mailbox(emulator, "alice@contoso.com")).filter((m) => m.subject === subject);
  const send = (bridge: Bridge, subject: string) =>
    sendToAlice({ port: smtpPort(bridge), username: "scanner", password: secret, subject });

  it("messages handed to either bridge are each delivered once", async () => {
    const subjects = Array.from({ length: 6 }, (_, i) => `fleet scan ${i} ${randomBytes(3).toString("hex")}`);
    for (const [i, subject] of subjects.entries()) {
      expect((await send(bridges[i % 2]!, subject)).stdout.trim()).toBe("OK");
    }
    await waitFor(
      async () => (await Promise.all(subjects.map(inbox))).every((found) => found.length > 0),
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const subject of subjects) expect(await inbox(subject)).toHaveLength(1);
  }, 40_000);

  it("a message Microsoft 365 refuses for good is posted to the webhook once by the fleet, not once per bridge", async () => {
    const subject = `refused fleet scan ${randomBytes(3).toString("hex")}`;
    emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status400", times: 1 });
    expect((await send(bridges[0]!, subject)).stdout.trim()).toBe("OK");
    await waitFor(async () => webhook.events.some((e) => e.subject === subject));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(webhook.events.filter((e) => e.subject === subject)).toEqual([
      expect.objectContaining({
        type: "spool-message-failed",
        error: expect.objectContaining({ code: "MESSAGE_INVALID" }),
      }),
    ]);
  }, 30_000);

  it("while Redis is down a device gets 451 4.3.0 naming the spool at once; after it is back the send goes through", async () => {
    const subject = `scan while redis is down ${randomBytes(3).toString("hex")}`;
    await redis.kill();
    try {
      const started = Date.now();
      const refused = await send(bridges[0]!, subject);
      expect(refused.stdout.trim()).toMatch(
        /^ERR 451 4\.3\.0 The bridge could not store the message in its spool/,
      );
      expect(refused.stdout).toContain("Redis");
      // Well inside a device's own SMTP timeout (minutes): it is told, not left waiting.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await redis.restart();
    }
    // The device tries again later, as SMTP clients do after a 4xx.
    await waitFor(async () => (await send(bridges[0]!, subject)).stdout.trim() === "OK", 20_000);
    await waitFor(async () => (await inbox(subject)).length > 0, 20_000);
    expect(await inbox(subject)).toHaveLength(1);
  }, 60_000);
});
