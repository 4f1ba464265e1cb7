import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { memoryTokenCache } from "@m365-mail/auth-ropc";
import { M365MailError } from "@m365-mail/core";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createBridgeMetrics,
  createCredentials,
  createLockoutGuard,
  createSignInProblems,
  DEFAULT_LOCKOUT,
  type Delivery,
  type DeliveryJob,
  type Spool,
  startSpool,
} from "../src/index.js";
import {
  collectingLogger,
  configFor,
  DEMO_PASSWORD,
  deviceAccount,
  mailbox,
  pythonSmtp,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
  waitFor,
} from "./bridge-env.js";

// A spooled message whose attempt may have reached Microsoft 365 is looked up in Sent Items before any
// resend. Here the look-up itself fails at first (Graph throttles it): the message must stay "maybe
// sent" and be looked up again, never resent without a look-up.
let emulator: TestEmulator;
let spool: Spool | undefined;
const logger = collectingLogger();

beforeAll(async () => {
  emulator = await startSmtpEmulator();
});
afterAll(async () => {
  await spool?.close();
  await emulator?.stop();
});

describe("spool: the Sent Items check before a resend", () => {
  it("a check that fails is retried, and the message found there is not sent again", async () => {
    const config = configFor(emulator, {
      spool: {
        type: "sqlite",
        path: join(emulator.dataDir, "check-spool.db"),
        firstRetryMs: 50,
        sentItemsGraceSeconds: 2,
      },
      accounts: [
        await deviceAccount({
          login: "scanner",
          secret: "scanner-secret-1",
          passwordEnv: "SUPPORT_PASSWORD",
        }),
      ],
    });
    const ca = await readFile(config.m365.caFile!, "utf8");
    const metrics = createBridgeMetrics();
    const credentials = createCredentials({
      config,
      cache: memoryTokenCache(),
      ca,
      guard: createLockoutGuard({ settings: DEFAULT_LOCKOUT, logger }),
      problems: createSignInProblems({ logger, metrics }),
      metrics,
      logger,
      env: { SUPPORT_PASSWORD: DEMO_PASSWORD },
    });
    const attempts: DeliveryJob[] = [];
    const delivery: Delivery = {
      async deliver(job) {
        attempts.push(job);
        const raw = await job.raw;
        // Exchange took the message (its copy is filed in Sent Items) and the answer was lost.
        await emulator.store.deliver("support@contoso.com", "sentitems", raw, { seen: true });
        throw new M365MailError("TIMEOUT", "Graph did not answer in time", { retryable: true });
      },
      async close() {},
    };
    // More 429s than the Graph transport retries by itself: the first look-up fails.
    emulator.admin.armFault({
      target: "graph",
      path: "/mailFolders/",
      kind: "status429",
      retryAfterSeconds: 0,
      times: 6,
    });
    spool = await startSpool({
      spool: config.spool!,
      m365: () => config.m365,
      ca,
      credentials: () => credentials,
      delivery,
      metrics,
      logger,
    });
    const signedIn = await credentials.signInWithoutPassword("scanner", "smtp");
    const messageId = await spool.accept({
      signedIn,
      account: credentials.account("scanner")!,
      mailFrom: "support@contoso.com",
      recipients: ["alice@contoso.com"],
      raw: Buffer.from(
        textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: "check before resend" }),
      ),
    });
    // Settled: sent — found in Sent Items, not sent again. (The spool's counts trail its changes.)
    await waitFor(
      async () => (await spool!.list({ state: "sent", limit: 10 })).some((m) => m.messageId === messageId),
      60_000,
    );
    expect(emulator.admin.counts()["graph.429"] ?? 0).toBeGreaterThanOrEqual(6);
    expect(attempts).toHaveLength(1);
    expect(spool.counts().failed).toBe(0);
    expect(logger.lines.join("\n")).toContain(`${messageId} is in Sent Items; not sending it again`);
    await credentials.dispose();
  }, 90_000);

  it("delivery over SMTP: the spool retries a refused end of data itself, and the message arrives once", async () => {
    const bridge = await startTestBridge(
      emulator,
      {
        listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
        spool: { type: "sqlite", path: join(emulator.dataDir, "smtp-spool.db"), firstRetryMs: 100 },
        accounts: [
          await deviceAccount({
            login: "printer",
            secret: "printer-secret-1",
            passwordEnv: "SUPPORT_PASSWORD",
            delivery: "smtp",
          }),
        ],
      },
      logger,
      { ...process.env, SUPPORT_PASSWORD: DEMO_PASSWORD },
    );
    try {
      emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503", times: 1 });
      const subject = `spooled over SMTP ${Date.now()}`;
      const sent = await pythonSmtp({
        port: smtpPort(bridge),
        username: "printer",
        password: "printer-secret-1",
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject }),
      });
      expect(sent.stdout.trim()).toBe("OK");
      await waitFor(async () =>
        (await mailbox(emulator, "alice@contoso.com")).some((m) => m.subject === subject),
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(
        (await mailbox(emulator, "alice@contoso.com")).filter((m) => m.subject === subject),
      ).toHaveLength(1);
      expect(emulator.admin.counts()["smtp.faults.status503"]).toBe(1);
      // The retry was the spool's (its outbox logs it), not the SMTP transport's own.
      expect(logger.lines.some((l) => l.includes("delivery attempt 1 failed, retrying"))).toBe(true);
    } finally {
      await bridge.close({ drainMs: 0 });
    }
  }, 60_000);
});
