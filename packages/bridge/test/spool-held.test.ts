import { randomBytes } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { attemptsToRetryFor, backoffMs } from "@m365-mail/outbox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  deviceAccount,
  mailbox,
  pythonSmtp,
  sendToAlice,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
  waitFor,
} from "./bridge-env.js";

// The device had its 250 the moment the message was spooled, so a spooled message that cannot be
// delivered yet must wait — as a mail server defers mail — not be dropped.
let emulator: TestEmulator;
let bridge: Bridge;
let passwordFile: string;
const secret = `scanner-${randomBytes(6).toString("hex")}`;
const logger = collectingLogger();

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  passwordFile = join(emulator.dataDir, "scanner.password");
  // The stored Microsoft 365 password is out of date (changed in Entra, not in the bridge's file).
  await writeFile(passwordFile, "an-old-password\n", { mode: 0o600 });
  bridge = await startTestBridge(
    emulator,
    {
      listeners: [
        {
          protocol: "smtp",
          host: "127.0.0.1",
          port: 0,
          security: "plain",
          // A device that cannot authenticate at all, on its own loopback address.
          allowedNetworks: ["127.0.0.0/8"],
          noAuth: { networks: ["127.0.0.7/32"], account: "scanner", from: "support@contoso.com" },
        },
      ],
      spool: { type: "sqlite", path: join(emulator.dataDir, "spool.db"), firstRetryMs: 50 },
      accounts: [await deviceAccount({ login: "scanner", secret, passwordFile })],
    },
    logger,
  );
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

describe("spool mode: a message that cannot be delivered yet", () => {
  it("is held while the account's stored password is wrong, reported, and delivered once a person fixes it", async () => {
    emulator.admin.resetCounts();
    const started = Date.now();
    const subject = `held ${randomBytes(3).toString("hex")}`;
    const sent = await sendToAlice({
      port: smtpPort(bridge),
      username: "scanner",
      password: secret,
      subject,
    });
    // Spooled on the local secret alone: the device is not refused for the bridge's problem with Entra.
    expect(sent.stdout.trim(), sent.stdout).toBe("OK");
    const noAuthSubject = `${subject} (no AUTH)`;
    const sentWithoutAuth = await pythonSmtp({
      port: smtpPort(bridge),
      sourceAddress: "127.0.0.7",
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: noAuthSubject }),
    });
    expect(sentWithoutAuth.stdout.trim(), sentWithoutAuth.stdout).toBe("OK");

    // Several retries later (50 ms, doubling): still in the spool, not failed; the problem is reported.
    await waitFor(async () => bridge.status().signInProblems.some((p) => p.account === "scanner"), 20_000);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(bridge.status().spool).toMatchObject({ failed: 0, uncertain: 0 });
    expect(bridge.status().spool!.queued + bridge.status().spool!.sending).toBe(2);
    const problem = bridge.status().signInProblems.find((p) => p.account === "scanner");
    expect(problem?.code).toBe("CONFIG_INVALID");
    expect(problem?.message).toContain(`Microsoft 365 refused the password in the file ${passwordFile}`);
    expect(logger.lines.some((l) => l.includes("is held until a person fixes CONFIG_INVALID"))).toBe(true);
    // The retries never took the wrong password to Entra again: its smart lockout stays far away.
    expect(emulator.admin.counts()["entra.token.password"] ?? 0).toBeLessThanOrEqual(3);
    expect(await mailbox(emulator, "alice@contoso.com")).toHaveLength(0);
    // How long they have waited, for an alert (time() minus the gauge) and in status.
    const since = bridge.status().spool!.oldestPendingSince;
    expect(Date.parse(since!)).toBeGreaterThanOrEqual(started - 1000);
    expect(Date.parse(since!)).toBeLessThanOrEqual(Date.now());
    expect(bridge.metrics()).toContain(
      `m365_bridge_spool_oldest_pending_timestamp_seconds ${Math.floor(Date.parse(since!) / 1000)}`,
    );

    // A person puts the current password into the file: the next retry delivers.
    await writeFile(passwordFile, `${DEMO_PASSWORD}\n`);
    await chmod(passwordFile, 0o600);
    await waitFor(async () => {
      const subjects = (await mailbox(emulator, "alice@contoso.com")).map((m) => m.subject);
      return subjects.includes(subject) && subjects.includes(noAuthSubject);
    }, 60_000);
    await waitFor(async () => bridge.status().spool!.queued + bridge.status().spool!.sending === 0, 10_000);
    expect(bridge.status().spool).toMatchObject({ failed: 0, uncertain: 0 });
    expect(bridge.metrics()).toMatch(/m365_bridge_spool_messages\{state="failed"\} 0/);
    await waitFor(async () => bridge.status().spool!.oldestPendingSince === undefined, 5_000);
    expect(bridge.metrics()).toContain("m365_bridge_spool_oldest_pending_timestamp_seconds 0");
  }, 90_000);

  it("keeps retrying for at least spool.maxQueueHours (default 5 days), not a fixed 10 attempts", () => {
    // Before, 10 attempts: about 18 minutes of retries, so a longer outage dropped messages already answered 250.
    const attempts = attemptsToRetryFor(120 * 3_600_000, 2_000);
    expect(attempts).toBeGreaterThan(10);
    // The outbox's own backoff (random jitter): the waits between those attempts always add up to 5 days.
    for (let run = 0; run < 20; run++) {
      let waited = 0;
      for (let a = 1; a < attempts; a++) waited += backoffMs(a, 2_000);
      expect(waited).toBeGreaterThanOrEqual(120 * 3_600_000);
    }
  });
});
