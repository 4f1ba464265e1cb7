import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { buildIfStale } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../src/index.js";
import {
  DEMO_PASSWORD,
  mailbox,
  pythonSmtp,
  run,
  smtpDialog,
  startSmtpEmulator,
  textMessage,
  waitFor,
} from "./bridge-env.js";

const root = join(import.meta.dirname, "..");
const bin = join(root, "dist", "bin.js");
let emulator: TestEmulator;
let child: ChildProcess | undefined;
let stderr = "";
let configPath: string;
const secret = `scanner-${randomBytes(6).toString("hex")}`;

async function writeConfig(extraAccounts: object[] = []) {
  const passwordFile = join(emulator.dataDir, "support-password");
  await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
  await writeFile(
    configPath,
    JSON.stringify({
      dataDir: join(emulator.dataDir, "bridge"),
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      metrics: { host: "127.0.0.1", port: 0 },
      accounts: [
        {
          name: "scanner",
          credentials: {
            mode: "mapped",
            login: "scanner",
            secretHash: await hashSecret(secret),
            username: "support@contoso.com",
            passwordFile,
          },
        },
        ...extraAccounts,
      ],
    }),
  );
}

const listening = (what: string) =>
  waitFor(async () => {
    const m = new RegExp(`${what} on 127\\.0\\.0\\.1:(\\d+)`).exec(stderr);
    return m ? Number(m[1]) : undefined;
  }, 30_000);

beforeAll(async () => {
  buildIfStale({ root, output: "dist/bin.js" });
  emulator = await startSmtpEmulator();
  configPath = join(emulator.dataDir, "bridge.json");
  await writeConfig();
  child = spawn(process.execPath, [bin, "--config", configPath, "--drain-ms", "5000"], {
    env: { ...process.env, ...emulator.env() },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.on("data", (c) => {
    stderr += c;
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await emulator?.stop();
});

describe("m365-mail-bridge (the bin)", () => {
  it("a mapped login (local secret, Microsoft 365 password from a 0600 file) sends through the bridge", async () => {
    const port = await listening("smtp");
    const s = `mapped ${randomBytes(3).toString("hex")}`;
    const result = await pythonSmtp({
      port,
      username: "scanner",
      password: secret,
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    await waitFor(async () => (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s));
    const wrong = await pythonSmtp({
      port,
      username: "scanner",
      password: "not-the-secret",
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: "x",
    });
    expect(wrong.stdout.trim()).toMatch(/^ERR 535 5\.7\.3/);
  });

  it("status and /metrics show the listener, the logins and no sign-in problem", async () => {
    const metricsPort = await listening("metrics");
    const status = await run(process.execPath, [bin, "status", "--url", `http://127.0.0.1:${metricsPort}`]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/smtp\s+plain\s+127\.0\.0\.1:\d+/);
    expect(status.stdout).toContain("scanner  (mapped, delivery graph, sync)");
    expect(status.stdout).toContain("sign-in problems: none ✓");
    expect(status.stdout).toContain("Microsoft 365 throttling: none");
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/m365_bridge_logins_total\{protocol="smtp",result="ok"\} 1/);
    expect(metrics).toMatch(/m365_bridge_logins_total\{protocol="smtp",result="failed"\} 1/);
    expect(metrics).toMatch(/m365_bridge_deliveries_total\{result="ok",route="graph"\} 1/);
  });

  it("SIGHUP reloads the accounts without dropping a session that is already signed in", async () => {
    const port = await listening("smtp");
    const session = await smtpDialog(port);
    await session.command("EHLO test");
    const auth = Buffer.from(`\0scanner\0${secret}`).toString("base64");
    expect(await session.command(`AUTH PLAIN ${auth}`)).toMatch(/^235/);
    const printerSecret = `printer-${randomBytes(6).toString("hex")}`;
    await writeConfig([
      {
        name: "printer",
        credentials: {
          mode: "mapped",
          login: "printer",
          secretHash: await hashSecret(printerSecret),
          username: "alice@contoso.com",
          passwordEnv: "PRINTER_M365_PASSWORD",
        },
      },
    ]);
    child!.kill("SIGHUP");
    await waitFor(async () => stderr.includes("reloaded"));
    // The old session goes on as if nothing happened.
    const s = `after reload ${randomBytes(3).toString("hex")}`;
    expect(await session.command("MAIL FROM:<support@contoso.com>")).toMatch(/^250/);
    expect(await session.command("RCPT TO:<alice@contoso.com>")).toMatch(/^250/);
    expect(await session.command("DATA")).toMatch(/^354/);
    expect(
      await session.command(
        `${textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s })}\r\n.`,
      ),
    ).toMatch(/^250/);
    session.close();
    await waitFor(async () => (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s));
    // The new login exists; its Microsoft 365 password is not in the environment, so the sign-in fails with the setting to fix.
    const printer = await pythonSmtp({
      port,
      username: "printer",
      password: printerSecret,
      from: "alice@contoso.com",
      to: ["support@contoso.com"],
      message: "x",
    });
    expect(printer.stdout.trim()).toMatch(/^ERR 535 5\.7\.8 .*PRINTER_M365_PASSWORD/);
  });

  it("a broken config on SIGHUP keeps the running settings", async () => {
    await writeFile(configPath, "{ not json");
    child!.kill("SIGHUP");
    await waitFor(async () => stderr.includes("reload failed, keeping the running settings"));
    const port = await listening("smtp");
    const ok = await pythonSmtp({
      port,
      username: "scanner",
      password: secret,
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: "still up" }),
    });
    expect(ok.stdout.trim()).toBe("OK");
  });

  it("SIGTERM drains and exits 0", async () => {
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stderr).toContain("stopping; open sessions get up to 5000 ms");
    expect(stderr).not.toContain(DEMO_PASSWORD);
    expect(stderr).not.toContain(secret);
  });

  it("hash-secret reads the secret from stdin; --check names a bad key with exit 2", async () => {
    const hashed = await run(process.execPath, [bin, "hash-secret"], { input: "a-device-secret\n" });
    expect(hashed.code).toBe(0);
    expect(hashed.stdout).toMatch(/^scrypt\$32768\$8\$1\$\S+\$\S+\n$/);
    const bad = join(emulator.dataDir, "bad.json");
    await writeFile(bad, JSON.stringify({ accounts: [{ credentials: { mode: "mapped", login: "x" } }] }));
    const check = await run(process.execPath, [bin, "--config", bad, "--check"], { env: emulator.env() });
    expect(check.code).toBe(2);
    expect(check.stderr).toMatch(/accounts\[0\]\.credentials\.secretHash: is required/);
  });
});
