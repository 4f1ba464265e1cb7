/**
 * Microsoft 365's daily sending limit (10,000 recipients in a rolling 24 hours; past it Exchange answers
 * `554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException` and the sender must wait):
 * in spool mode the device already had its 250, so the message waits and goes out once the window
 * frees up — it is not failed. Exchange counts Graph and SMTP together, and over Graph the refusal is
 * `ErrorSubmissionQuotaExceeded`; both deliveries are tested. In sync mode the device gets a 4xx, so
 * that an MTA keeps the message and retries. The emulator's limit is shortened to 2 recipients in 8 s.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  collectingLogger,
  demoPasswordFile,
  deviceAccount,
  mailbox,
  sendEachToAlice,
  sendToAlice,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  waitFor,
} from "./bridge-env.js";

// Long enough that three sends finish inside it on a loaded 2-core machine (the suite runs files in parallel).
const WINDOW_MS = 8_000;

/** An emulator whose mailboxes may send to 2 recipients per WINDOW_MS, and a bridge for one mapped account. */
async function startLimitedBridge(options: {
  delivery: "smtp" | "graph";
  answer: "spool" | "sync";
  secret: string;
  logger: ReturnType<typeof collectingLogger>;
}): Promise<{ emulator: TestEmulator; bridge: Bridge }> {
  const emulator = await startSmtpEmulator();
  emulator.admin.updatePartSettings(options.delivery, { recipientsPerDay: 2, recipientWindowMs: WINDOW_MS });
  const passwordFile = await demoPasswordFile(emulator, "erp.password");
  const bridge = await startTestBridge(
    emulator,
    {
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      spool: {
        type: "sqlite",
        path: join(emulator.dataDir, "spool.db"),
        firstRetryMs: 50,
        dailyLimitRetrySeconds: 1,
      },
      accounts: [
        await deviceAccount({
          login: "erp",
          secret: options.secret,
          passwordFile,
          answer: options.answer,
          delivery: options.delivery,
        }),
      ],
    },
    options.logger,
  );
  return { emulator, bridge };
}

const invoice = (n: string) => `invoice ${n} ${randomBytes(3).toString("hex")}`;

describe.each([
  { delivery: "smtp", refusals: "smtp.rejected.quota" },
  { delivery: "graph", refusals: "graph.rejected.quota" },
] as const)(
  "spool mode at Microsoft 365's daily sending limit, delivery $delivery",
  ({ delivery, refusals }) => {
    let emulator: TestEmulator;
    let bridge: Bridge;
    const secret = `erp-${randomBytes(6).toString("hex")}`;
    const logger = collectingLogger();

    beforeAll(async () => {
      ({ emulator, bridge } = await startLimitedBridge({ delivery, answer: "spool", secret, logger }));
    });

    afterAll(async () => {
      await bridge?.close({ drainMs: 0 });
      await emulator?.stop();
    });

    it("holds the message past the limit and delivers it, once, when the window frees up", async () => {
      const subjects = ["one", "two", "three"].map(invoice);
      const started = Date.now();
      expect(
        await sendEachToAlice({ port: smtpPort(bridge), username: "erp", password: secret, subjects }),
      ).toEqual(["OK", "OK", "OK"]);
      const inbox = async () => (await mailbox(emulator, "alice@contoso.com")).map((m) => m.subject);
      // Two fit the limit; the third is refused by Exchange and waits in the spool, not failed.
      await waitFor(async () => (emulator.admin.counts()[refusals] ?? 0) >= 1, 10_000);
      expect(Date.now() - started).toBeLessThan(WINDOW_MS);
      expect((await inbox()).filter((s) => subjects.includes(s!))).toHaveLength(2);
      expect(bridge.status().spool).toMatchObject({ failed: 0, uncertain: 0 });
      expect(bridge.status().spool!.queued + bridge.status().spool!.sending).toBe(1);
      expect(logger.lines.join("\n")).toContain("reached Microsoft 365's daily sending limit");

      // The window frees up: the held message goes out, and each message arrived exactly once.
      await waitFor(async () => (await inbox()).filter((s) => subjects.includes(s!)).length === 3, 15_000);
      await waitFor(async () => bridge.status().spool!.queued + bridge.status().spool!.sending === 0, 5_000);
      expect((await inbox()).filter((s) => subjects.includes(s!)).sort()).toEqual([...subjects].sort());
      expect(bridge.status().spool).toMatchObject({ failed: 0, uncertain: 0 });
    }, 40_000);
  },
);

describe("sync mode at Microsoft 365's daily sending limit", () => {
  let emulator: TestEmulator;
  let bridge: Bridge;
  const secret = `erp-${randomBytes(6).toString("hex")}`;
  const logger = collectingLogger();

  beforeAll(async () => {
    ({ emulator, bridge } = await startLimitedBridge({ delivery: "graph", answer: "sync", secret, logger }));
  });

  afterAll(async () => {
    await bridge?.close({ drainMs: 0 });
    await emulator?.stop();
  });

  it("answers a temporary 451 4.2.0 that names the limit, so the client keeps the message and retries", async () => {
    const send = (subject: string) =>
      sendToAlice({ port: smtpPort(bridge), username: "erp", password: secret, subject });
    const subjects = ["one", "two", "three"].map(invoice);
    const answers = [];
    for (const subject of subjects) answers.push((await send(subject)).stdout.trim());
    expect(answers.slice(0, 2)).toEqual(["OK", "OK"]);
    expect(answers[2]).toMatch(/^ERR 451 4\.2\.0 The mailbox reached Microsoft 365's daily sending limit/);
    expect(answers[2]).toContain("ErrorSubmissionQuotaExceeded");
    const inbox = async () =>
      (await mailbox(emulator, "alice@contoso.com"))
        .map((m) => m.subject)
        .filter((s) => subjects.includes(s!));
    expect(await inbox()).toHaveLength(2);

    // What the client does with a 4xx: try again later, and then it goes through.
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
    expect((await send(subjects[2]!)).stdout.trim()).toBe("OK");
    expect((await inbox()).sort()).toEqual([...subjects].sort());
  }, 30_000);
});
