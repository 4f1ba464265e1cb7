import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DEMO_PASSWORD } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, SUPPORT, spawnCli, startTestEmulator, type TestEmulator, until } from "./helpers.js";

// `m365-mail bridge …` as an administrator types it: the built CLI, not runBridgeCommand. The bridge
// package's own tests cover what the bridge does (packages/bridge/test); these, that the CLI hands every
// form of the command to it — arguments, stdin, SIGHUP and SIGTERM.
let emu: TestEmulator;
let configPath: string;
let cachePath: string;
beforeAll(async () => {
  emu = await startTestEmulator(undefined, { dovecot: false });
  emu.emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
  const keyFile = join(emu.home, "bridge-cache.key");
  await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  cachePath = join(emu.home, "bridge-tokens.json");
  // The device's local secret, hashed through the CLI as an administrator would.
  const hashed = await runCli(["bridge", "hash-secret"], { input: "phone-secret\n" });
  expect(hashed.code).toBe(0);
  const secretHash = hashed.stdout.trim();
  expect(secretHash).toMatch(/^scrypt\$/);
  configPath = join(emu.home, "bridge.json");
  await writeFile(
    configPath,
    JSON.stringify({
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      metrics: { host: "127.0.0.1", port: 0 },
      tokenCache: { type: "file", path: cachePath, keyFile },
      accounts: [
        {
          name: "ceo-phone",
          credentials: {
            mode: "mapped",
            login: "ceo-phone",
            secretHash,
            username: "mfa@contoso.com",
            signIn: "device-code",
          },
        },
        { credentials: { mode: "passthrough", username: "support@contoso.com" } },
      ],
    }),
  );
});
afterAll(() => emu?.stop());

function python(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", args, { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", () => resolve({ stdout, stderr }));
  });
}

describe("m365-mail bridge --config <file>", () => {
  it("the config is valid (--check); it serves a password client, shows its status, reloads on SIGHUP and drains on SIGTERM", async () => {
    const checked = await runCli(["bridge", "--check", "--config", configPath], { env: emu.env() });
    expect(checked.code).toBe(0);
    const bridge = spawnCli(["bridge", "--config", configPath, "--drain-ms", "2000"], { env: emu.env() });
    try {
      let port = 0;
      await until(() => {
        port = Number(/smtp on 127\.0\.0\.1:(\d+)/.exec(bridge.output().stderr)?.[1] ?? 0);
        return port > 0 || bridge.output().code !== null;
      }, "the bridge's SMTP listener");
      // A client that knows only the user's password (passthrough): smtplib, AUTH PLAIN, through Graph.
      // Not spawnSync: the emulator runs in this process and must keep answering.
      const sent = await python([
        "-c",
        String.raw`import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.login(sys.argv[2], sys.argv[3])
s.sendmail(sys.argv[2], [sys.argv[2]], "From: " + sys.argv[2] + "\r\nTo: " + sys.argv[2] + "\r\nSubject: via the CLI's bridge\r\n\r\nhello\r\n")
s.quit()
print("OK")`,
        String(port),
        SUPPORT,
        DEMO_PASSWORD,
      ]);
      expect(sent.stdout.trim(), sent.stderr).toBe("OK");
      // status through the CLI: the device-code account nobody signed in yet is a problem (exit 1),
      // with the command that fixes it.
      const metricsPort = /metrics on 127\.0\.0\.1:(\d+)/.exec(bridge.output().stderr)?.[1];
      const status = await runCli(["bridge", "status", "--url", `http://127.0.0.1:${metricsPort}`]);
      expect(status.code).toBe(1);
      expect(status.stdout).toContain("ceo-phone");
      expect(status.stdout).toContain("SIGN_IN_REQUIRED");
      expect(status.stdout).toContain(`m365-mail bridge login --config ${configPath} ceo-phone`);
      // --config finds the metrics listener in the file, without the M365_* variables the bridge runs with.
      const withPort = JSON.parse(await readFile(configPath, "utf8"));
      withPort.metrics.port = Number(metricsPort);
      const statusConfig = join(emu.home, "bridge-status.json");
      await writeFile(statusConfig, JSON.stringify(withPort));
      const byConfig = await runCli(["bridge", "status", "--config", statusConfig]);
      expect(byConfig.code, byConfig.stderr).toBe(1);
      expect(byConfig.stdout).toContain("SIGN_IN_REQUIRED");
      bridge.child.kill("SIGHUP");
      await until(() => bridge.output().stderr.includes(`reloaded ${configPath}`), "the reload");
      bridge.child.kill("SIGTERM");
      expect(await bridge.exited).toBe(0);
      expect(bridge.output().stderr).toContain("stopping; open sessions get up to 2000 ms");
    } finally {
      bridge.child.kill("SIGKILL");
    }
  });
});

describe("m365-mail bridge login --config <file> <account>", () => {
  it("prints the code, waits for the person, and stores the sign-in in the bridge's token cache", async () => {
    const before = emu.emulator.admin.deviceCodes().length;
    const login = spawnCli(["bridge", "login", "--config", configPath, "ceo-phone"], { env: emu.env() });
    try {
      let userCode: string | undefined;
      await until(() => {
        userCode = emu.emulator.admin.deviceCodes()[before]?.userCode;
        // Issued at Entra, then printed for the person.
        // The code and the line naming the user may arrive in separate writes: wait for both.
        const { stderr, code } = login.output();
        return (
          (userCode !== undefined && stderr.includes(userCode) && stderr.includes("Sign in as")) ||
          code !== null
        );
      }, "the device code on stderr");
      const shown = login.output();
      expect(shown.stderr, `${shown.stdout}\n${shown.stderr}`).toContain(userCode!);
      expect(shown.stderr).toContain("Sign in as mfa@contoso.com.");
      emu.emulator.admin.approveDeviceCode(userCode!, "mfa@contoso.com");
      expect(await login.exited, login.output().stderr).toBe(0);
      expect(login.output().stdout).toContain("Signed in: account ceo-phone acts as mfa@contoso.com.");
      expect(login.output().stdout).toContain(`The sign-in is stored in ${cachePath}`);
      expect(statSync(cachePath).mode & 0o777).toBe(0o600);
    } finally {
      // A failed expectation must not leave it polling Entra.
      login.child.kill();
    }
  });

  it("refuses an account that signs in with a password (exit 2), before any code", async () => {
    const before = emu.emulator.admin.deviceCodes().length;
    const refused = await runCli(["bridge", "login", "--config", configPath, "support@contoso.com"], {
      env: emu.env(),
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("ceo-phone");
    expect(emu.emulator.admin.deviceCodes()).toHaveLength(before);
  });
});
