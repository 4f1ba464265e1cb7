import { randomBytes } from "node:crypto";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, hashSecret } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  mailbox,
  pythonSmtp,
  run,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  startWebhookReceiver,
  textMessage,
  waitFor,
} from "./bridge-env.js";

let emulator: TestEmulator;
let bridge: Bridge;
const logger = collectingLogger();
let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;
let events: Record<string, unknown>[];
const sharedSecret = `shared-${randomBytes(6).toString("hex")}`;
const scannerSecret = `scanner-${randomBytes(6).toString("hex")}`;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  webhook = await startWebhookReceiver();
  events = webhook.events;
  bridge = await startTestBridge(
    emulator,
    {
      webhookUrl: webhook.url,
      listeners: [
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
        // Devices on 127.0.0.6 cannot authenticate: they send as the scanner account, From fixed.
        {
          protocol: "smtp",
          host: "127.0.0.1",
          port: 0,
          security: "plain",
          noAuth: { networks: ["127.0.0.6/32"], account: "scanner", from: "support@contoso.com" },
        },
      ],
      accounts: [
        // SMTP AUTH is off for this mailbox, and this account insists on SMTP delivery.
        { credentials: { mode: "passthrough", username: "nosmtp@contoso.com" }, delivery: "smtp" },
        // Catch-all: every contoso.com user with their own password.
        { credentials: { mode: "passthrough", domain: "contoso.com" } },
        // A local login for the shared mailbox, signed in as its delegate.
        {
          name: "shared-inbox",
          mailbox: "shared@contoso.com",
          credentials: {
            mode: "mapped",
            login: "shared-inbox",
            secretHash: await hashSecret(sharedSecret),
            username: "support@contoso.com",
            passwordEnv: "SUPPORT_PASSWORD",
          },
        },
        {
          name: "scanner",
          // An address the account may use when a device logs in, never the no-AUTH network's device.
          sendAs: ["shared@contoso.com"],
          credentials: {
            mode: "mapped",
            login: "scanner",
            secretHash: await hashSecret(scannerSecret),
            username: "support@contoso.com",
            passwordEnv: "SUPPORT_PASSWORD",
          },
        },
      ],
    },
    logger,
    { ...process.env, SUPPORT_PASSWORD: DEMO_PASSWORD },
  );
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
  await webhook?.close();
});

const subject = (name: string) => `${name} ${randomBytes(4).toString("hex")}`;

describe("accounts", () => {
  it("catch-all domain: any user of the domain logs in with their own Microsoft 365 password", async () => {
    const s = subject("catch-all");
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "alice@contoso.com",
      password: DEMO_PASSWORD,
      from: "alice@contoso.com",
      to: ["support@contoso.com"],
      message: textMessage({ from: "alice@contoso.com", to: "support@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    await waitFor(async () => (await mailbox(emulator, "support@contoso.com")).find((m) => m.subject === s));
    const other = await pythonSmtp({
      port: smtpPort(bridge),
      username: "someone@fabrikam.com",
      password: DEMO_PASSWORD,
      from: "someone@fabrikam.com",
      to: ["alice@contoso.com"],
      message: "x",
    });
    expect(other.stdout.trim()).toMatch(/^ERR 535 5\.7\.3/);
  });

  it("shared mailbox: a local login sends as the shared address with the delegate's credentials, copy in its Sent Items", async () => {
    const s = subject("shared");
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      mechanism: "LOGIN",
      username: "shared-inbox",
      password: sharedSecret,
      from: "shared@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "shared@contoso.com", to: "alice@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    const got = await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s),
    );
    expect(got.from?.value[0]?.address).toBe("shared@contoso.com");
    await waitFor(async () =>
      (await mailbox(emulator, "shared@contoso.com", "sentitems")).find((m) => m.subject === s),
    );
  });

  it("no-AUTH network: a device that cannot log in sends as its account with the fixed sender, nothing else", async () => {
    const s = subject("no-auth");
    const port = smtpPort(bridge, 1);
    const result = await pythonSmtp({
      port,
      sourceAddress: "127.0.0.6",
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    await waitFor(async () => (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s));
    const otherSender = await pythonSmtp({
      port,
      sourceAddress: "127.0.0.6",
      from: "alice@contoso.com",
      to: ["alice@contoso.com"],
      message: "x",
    });
    expect(otherSender.stdout.trim()).toBe(
      "ERR 550 5.7.60 SMTP; Client does not have permissions to send as this sender",
    );
    // Nor after a first message from the fixed sender, in the same session.
    const script = `
import os, smtplib
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=30, source_address=("127.0.0.6", 0))
s.ehlo()
print(s.mail("support@contoso.com")[0])
s.rset()
print(s.mail("shared@contoso.com")[0])
s.quit()
`;
    const sameSession = await run("python3", ["-c", script], {
      env: { PORT: String(port) },
      timeoutMs: 30_000,
    });
    expect(sameSession.stdout.trim().split("\n")).toEqual(["250", "550"]);
    // Another loopback address is not on the no-AUTH list: no open relay.
    const outsider = await pythonSmtp({
      port,
      sourceAddress: "127.0.0.7",
      from: "support@contoso.com",
      to: ["someone@example.org"],
      message: "x",
    });
    expect(outsider.stdout.trim()).toMatch(/^ERR 530 5\.7\.57/);
  });

  it("a sign-in problem that needs a person (MFA) is answered with the setting to change, logged once, in status and metrics, and sent to the webhook once", async () => {
    for (let i = 0; i < 3; i++) {
      const result = await pythonSmtp({
        port: smtpPort(bridge),
        username: "mfa@contoso.com",
        password: DEMO_PASSWORD,
        from: "mfa@contoso.com",
        to: ["alice@contoso.com"],
        message: "x",
      });
      expect(result.stdout.trim()).toMatch(/^ERR 535 5\.7\.8 .*MFA_REQUIRED/);
    }
    // Only the first of the three attempts asked Entra: the same password is answered from memory for a minute.
    expect(emulator.admin.counts()["entra.token.password:mfa@contoso.com"]).toBe(1);
    await waitFor(async () => events.length > 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(events).toEqual([
      expect.objectContaining({ type: "sign-in-problem", account: "@contoso.com", code: "MFA_REQUIRED" }),
    ]);
    expect(logger.lines.filter((l) => l.includes("needs a person")).length).toBe(1);
    expect(bridge.status().signInProblems).toEqual([
      expect.objectContaining({ code: "MFA_REQUIRED", hint: expect.stringMatching(/MFA|multi-factor/i) }),
    ]);
    expect(bridge.metrics()).toMatch(
      /m365_bridge_sign_in_problems\{account="@contoso\.com",area="sign-in",code="MFA_REQUIRED"\} 1/,
    );

    // Another user of the same catch-all account signs in fine: that says nothing about mfa@'s MFA.
    const alice = await pythonSmtp({
      port: smtpPort(bridge),
      username: "alice@contoso.com",
      password: DEMO_PASSWORD,
      from: "alice@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "alice@contoso.com", to: "alice@contoso.com", subject: "catch-all" }),
    });
    expect(alice.stdout.trim()).toBe("OK");
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.account === "@contoso.com")).toEqual([
      expect.objectContaining({ type: "sign-in-problem", user: "mfa@contoso.com", code: "MFA_REQUIRED" }),
    ]);
    expect(bridge.status().signInProblems).toEqual([expect.objectContaining({ user: "mfa@contoso.com" })]);
  });

  it('delivery "smtp" where SMTP AUTH is disabled: 550 5.7.139 with the fix, and a sign-in problem in status', async () => {
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "nosmtp@contoso.com",
      password: DEMO_PASSWORD,
      from: "nosmtp@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({
        from: "nosmtp@contoso.com",
        to: "alice@contoso.com",
        subject: subject("smtp off"),
      }),
    });
    expect(result.stdout.trim()).toMatch(
      /^ERR 550 5\.7\.139 Microsoft 365 refused the submission \(PROTOCOL_DISABLED/,
    );
    expect(bridge.status().signInProblems).toContainEqual(
      expect.objectContaining({ account: "nosmtp@contoso.com", code: "PROTOCOL_DISABLED" }),
    );
    await waitFor(async () => events.some((e) => e.code === "PROTOCOL_DISABLED"));
  });
});
