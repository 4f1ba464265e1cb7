/**
 * `m365-mail bridge doctor`: an operator checks every account before a device finds out. Each mapped
 * account is signed in as the bridge would sign it in, then what the listeners need is tried against the
 * emulator (Graph, SMTP, Dovecot's IMAP and POP3): the right setting is named for a stored password that
 * Entra refuses, a mailbox with SMTP AUTH off, one with IMAP off, a user under MFA, and a device-code
 * account nobody signed in yet — which passes once `bridge login` stored its sign-in.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dovecotPart, graphPart, smtpPart, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BridgeDoctorReport } from "../src/index.js";
import {
  bridgeCommand,
  bridgeLogin,
  DEMO_PASSWORD,
  demoPasswordFile,
  mappedCredentials,
} from "./bridge-env.js";
import { dovecotMissing } from "./relay-helpers.js";

let emulator: TestEmulator;
let configPath: string;
let env: NodeJS.ProcessEnv;
const secret = `device-${randomBytes(6).toString("hex")}`;

const doctor = (...args: string[]) => bridgeCommand(["doctor", "--config", configPath, ...args], env);
const doctorJson = async (...args: string[]) => {
  const result = await doctor(...args, "--json");
  return { code: result.code, report: JSON.parse(result.stdout) as BridgeDoctorReport };
};

beforeAll(async () => {
  emulator = await startTestEmulator({
    prefix: "m365-bridge-doctor-",
    parts: [graphPart(), smtpPart(), ...(dovecotMissing ? [] : [dovecotPart()])],
  });
  emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
  const keyFile = join(emulator.dataDir, "token-cache.key");
  await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  const oldPasswordFile = join(emulator.dataDir, "old.password");
  await writeFile(oldPasswordFile, "an-old-password\n", { mode: 0o600 });
  const mapped = (login: string, username: string, passwordFile: string) =>
    mappedCredentials({ login, secret, username, passwordFile });
  const demoFile = await demoPasswordFile(emulator, "demo.password");
  configPath = join(emulator.dataDir, "bridge.json");
  await writeFile(
    configPath,
    JSON.stringify({
      dataDir: join(emulator.dataDir, "bridge"),
      listeners: [
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
        ...(dovecotMissing
          ? []
          : [
              { protocol: "imap", host: "127.0.0.1", port: 0, security: "plain" },
              { protocol: "pop3", host: "127.0.0.1", port: 0, security: "plain" },
            ]),
      ],
      tokenCache: { type: "file", path: join(emulator.dataDir, "bridge-tokens.json"), keyFile },
      spool: { type: "sqlite", path: join(emulator.dataDir, "spool.db") },
      accounts: [
        {
          name: "scanner",
          answer: "spool",
          credentials: await mapped("scanner", "support@contoso.com", demoFile),
        },
        { name: "erp", credentials: await mapped("erp", "support@contoso.com", oldPasswordFile) },
        {
          name: "relay",
          delivery: "smtp",
          credentials: await mapped("relay", "nosmtp@contoso.com", demoFile),
        },
        { name: "reader", credentials: await mapped("reader", "noimap@contoso.com", demoFile) },
        { name: "mfa-password", credentials: await mapped("mfa-password", "mfa@contoso.com", demoFile) },
        {
          name: "mfa-scanner",
          credentials: {
            mode: "mapped",
            login: "mfa-scanner",
            secretHash: (await mappedCredentials({ login: "x", secret, username: "x" })).secretHash,
            username: "mfa@contoso.com",
            signIn: "device-code",
          },
        },
        {
          name: "auto-sender",
          delivery: "auto",
          credentials: await mapped("auto-sender", "alice@contoso.com", demoFile),
        },
        { name: "staff", credentials: { mode: "passthrough", domain: "contoso.com" } },
      ],
    }),
  );
  env = { ...process.env, ...emulator.env() };
});
afterAll(async () => {
  await emulator?.stop();
});

describe("m365-mail bridge doctor", () => {
  it("passes an account that can do everything the listeners ask, with one password grant and nothing sent", async () => {
    emulator.admin.resetCounts();
    const sentBefore = (await emulator.store.list("support@contoso.com", "sentitems").catch(() => [])).length;
    const { code, stdout, stderr } = await doctor("--account", "scanner");
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain("scanner (mapped, as support@contoso.com)");
    expect(stdout).toMatch(
      /✓ sign-in +password grant for support@contoso.com with the password in the file /,
    );
    expect(stdout).toMatch(/✓ SMTP delivery +Graph sendMail as support@contoso.com: User.Read: GET \/me/);
    expect(stdout).toMatch(/✓ Sent Items +Mail.Read: GET .*mailFolders\/inbox/);
    if (!dovecotMissing) {
      expect(stdout).toMatch(
        /✓ IMAP +AUTHENTICATE XOAUTH2 user=support@contoso.com at 127.0.0.1:\d+: signed in/,
      );
      expect(stdout).toMatch(/✓ POP3 +AUTH XOAUTH2 user=support@contoso.com at 127.0.0.1:\d+: signed in/);
    }
    expect(stdout).toContain("Every account checked is ready (1).");
    expect(stdout).not.toContain(DEMO_PASSWORD);
    const counts = emulator.admin.counts();
    expect(counts["entra.token.password:support@contoso.com"]).toBe(1);
    expect((await emulator.store.list("support@contoso.com", "sentitems").catch(() => [])).length).toBe(
      sentBefore,
    );
  });

  it("names the setting to change for each account that would fail, and exits 1", async () => {
    const { code, report } = await doctorJson();
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    const byName = Object.fromEntries(report.accounts.map((a) => [a.account, a]));
    const check = (account: string, name: string) => byName[account]!.checks.find((c) => c.name === name);

    // A stored password changed in Entra but not in the file: the file is named, nothing else is tried.
    expect(byName.erp!.ok).toBe(false);
    expect(check("erp", "sign-in")).toMatchObject({ status: "fail", error: { code: "CONFIG_INVALID" } });
    expect(check("erp", "sign-in")!.error!.hint).toContain("old.password");
    expect(byName.erp!.checks).toHaveLength(1);

    // SMTP AUTH off for the mailbox: Exchange's 5.7.139, with the Exchange admin setting.
    expect(check("relay", "sign-in")!.status).toBe("pass");
    const smtp = check("relay", "SMTP delivery")!;
    expect(smtp.status).toBe("fail");
    expect(`${smtp.error!.message} ${smtp.error!.hint}`).toMatch(
      /5\.7\.139|SMTP AUTH|SmtpClientAuthentication/i,
    );

    if (!dovecotMissing) {
      const imap = check("reader", "IMAP")!;
      expect(imap.status).toBe("fail");
      expect(`${imap.error!.message} ${imap.error!.hint}`).toMatch(/IMAP/);
      expect(check("reader", "POP3")!.status).toBe("pass");
    }

    // A user under MFA cannot use a stored password; the device-code account says how to sign in.
    const mfa = check("mfa-password", "sign-in")!.error!;
    expect(mfa.code).toBe("MFA_REQUIRED");
    expect(mfa.hint).toContain(`m365-mail bridge login --config ${configPath} mfa-password`);
    expect(mfa.hint).not.toMatch(/M365_AUTH|--device-code/);
    const missing = check("mfa-scanner", "sign-in")!;
    expect(missing.error!.code).toBe("SIGN_IN_REQUIRED");
    expect(missing.error!.hint).toContain(`m365-mail bridge login --config ${configPath} mfa-scanner`);

    // Passthrough: the password comes from each device, so nothing is tried.
    expect(byName.staff).toMatchObject({ ok: true, checks: [{ name: "sign-in", status: "skip" }] });
    expect(byName.scanner!.ok).toBe(true);
  });

  it("prints each failure with its fix on a terminal", async () => {
    const { code, stdout } = await doctor("--account", "relay");
    expect(code).toBe(1);
    expect(stdout).toMatch(
      /✗ SMTP delivery +SMTP: 127\.0\.0\.1:\d+ STARTTLS; AUTH XOAUTH2 user=nosmtp@contoso\.com\n/,
    );
    expect(stdout).toMatch(/\n {6}→ /);
    expect(stdout).toContain("1 of 1 account(s) need a change: relay");
  });

  it("passes a device-code account once a person signed it in with bridge login", async () => {
    const login = await bridgeLogin(emulator, configPath, "mfa-scanner", "mfa@contoso.com", env);
    expect(login.code, login.stderr).toBe(0);
    const { code, report } = await doctorJson("--account", "mfa-scanner");
    expect(report.accounts[0]!.checks.map((c) => [c.name, c.status])).toEqual([
      ["sign-in", "pass"],
      ["SMTP delivery", "pass"],
      ...(dovecotMissing
        ? []
        : [
            ["IMAP", "pass"],
            ["POP3", "pass"],
          ]),
    ]);
    expect(code).toBe(0);
  });

  it("without Mail.Send consent: delivery graph fails naming the permission, auto passes over SMTP", async () => {
    const before = emulator.admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
    emulator.admin.updateApp(emulator.clientId, {
      grantedPermissions: { ...before, graph: (before.graph ?? []).filter((p) => p !== "Mail.Send") },
    });
    try {
      const graph = (await doctorJson("--account", "scanner")).report.accounts[0]!;
      const delivery = graph.checks.find((c) => c.name === "SMTP delivery")!;
      expect(delivery.status).toBe("fail");
      expect(delivery.error!.hint).toMatch(/Mail\.Send.*Grant admin consent/);
      const auto = (await doctorJson("--account", "auto-sender")).report.accounts[0]!;
      const viaSmtp = auto.checks.find((c) => c.name === "SMTP delivery")!;
      expect(viaSmtp.status).toBe("pass");
      expect(viaSmtp.detail).toMatch(
        /^SMTP \(Graph: not in the token's scp claim, so "auto" uses SMTP\): .*MAIL FROM/,
      );
    } finally {
      emulator.admin.updateApp(emulator.clientId, { grantedPermissions: before });
    }
  });

  it("refuses an unknown account and a missing config with a usage error", async () => {
    const unknown = await doctor("--account", "nobody");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no account named nobody");
    expect(unknown.stderr).toContain("scanner, erp");
    const noConfig = await bridgeCommand(["doctor"], {});
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain("needs --config");
  });
});
