import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, hashSecret } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  pythonSmtp,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
} from "./bridge-env.js";

// The Microsoft 365 password of a mapped account was changed in Entra but not in the bridge's file: the
// device's own secret is right, and every login of it would send the stale password to Entra.
let emulator: TestEmulator;
let bridge: Bridge;
let passwordFile: string;
const secret = `printer-${randomBytes(6).toString("hex")}`;
const logger = collectingLogger();

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  emulator.admin.setSmartLockout({ threshold: 10, lockoutSeconds: 60 });
  passwordFile = join(emulator.dataDir, "printer.password");
  await writeFile(passwordFile, "the-password-before-the-change\n", { mode: 0o600 });
  bridge = await startTestBridge(
    emulator,
    {
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      accounts: [
        {
          name: "printer",
          credentials: {
            mode: "mapped",
            login: "printer",
            secretHash: await hashSecret(secret),
            username: "support@contoso.com",
            passwordFile,
          },
        },
      ],
    },
    logger,
  );
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

const send = (subject: string) =>
  pythonSmtp({
    port: smtpPort(bridge),
    username: "printer",
    password: secret,
    from: "support@contoso.com",
    to: ["alice@contoso.com"],
    message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject }),
  });

describe("a mapped account whose stored Microsoft 365 password is out of date", () => {
  it("is reported at the bridge's start, before any device logs in", () => {
    expect(emulator.admin.counts()["entra.token.password"]).toBe(1);
    const problem = bridge.status().signInProblems.find((p) => p.account === "printer");
    expect(problem?.code).toBe("CONFIG_INVALID");
    expect(logger.lines.join("\n")).toContain("account printer: the sign-in with its stored password failed");
  });

  it("15 device logins do not send it to Entra again: the account is never locked, and the reply names the file", async () => {
    const replies: string[] = [];
    for (let i = 0; i < 15; i++) replies.push((await send(`try ${i}`)).stdout.trim());
    // Before, each login was a password grant: 15 failures, and Entra's lockout after the tenth.
    expect(emulator.admin.counts()["entra.token.password"]).toBe(1);
    expect(emulator.admin.counts()["entra.lockout.locked:support@contoso.com"] ?? 0).toBe(0);
    // The device's secret was right: not "wrong credentials" (5.7.3), but a problem for the administrator.
    for (const reply of replies) {
      expect(reply).toMatch(/^ERR 535 5\.7\.8 /);
      expect(reply).toContain(`the file ${passwordFile}`);
    }
    const problem = bridge.status().signInProblems.find((p) => p.account === "printer");
    expect(problem?.code).toBe("CONFIG_INVALID");
    expect(problem?.hint).toContain(
      `Put support@contoso.com's current Microsoft 365 password into the file ${passwordFile}`,
    );
  });

  it("works at the next login once a person puts the current password into the file", async () => {
    await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
    expect((await send("after the fix")).stdout.trim()).toBe("OK");
    expect(bridge.status().signInProblems).toEqual([]);
    expect(logger.lines.join("\n")).not.toContain("the-password-before-the-change");
  });
});

describe("a mapped account whose stored password is right", () => {
  it("is signed in at the bridge's start: the device's first login finds a token and asks Entra nothing", async () => {
    const goodFile = join(emulator.dataDir, "scanner.password");
    await writeFile(goodFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
    const scannerSecret = `scanner-${randomBytes(6).toString("hex")}`;
    const grants = () => emulator.admin.counts()["entra.token.password:alice@contoso.com"] ?? 0;
    const before = grants();
    const startLog = collectingLogger();
    const second = await startTestBridge(
      emulator,
      {
        listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
        accounts: [
          {
            name: "scanner",
            credentials: {
              mode: "mapped",
              login: "scanner",
              secretHash: await hashSecret(scannerSecret),
              username: "alice@contoso.com",
              passwordFile: goodFile,
            },
          },
        ],
      },
      startLog,
    );
    try {
      expect(grants()).toBe(before + 1);
      expect(startLog.lines.join("\n")).toContain("account scanner: signed in as alice@contoso.com");
      const sent = await pythonSmtp({
        port: smtpPort(second),
        username: "scanner",
        password: scannerSecret,
        from: "alice@contoso.com",
        to: ["support@contoso.com"],
        message: textMessage({ from: "alice@contoso.com", to: "support@contoso.com", subject: "warm" }),
      });
      expect(sent.stdout.trim(), sent.stdout).toBe("OK");
      expect(grants()).toBe(before + 1);
      expect(second.status().signInProblems).toEqual([]);
    } finally {
      await second.close({ drainMs: 0 });
    }
  });
});
