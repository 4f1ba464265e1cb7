import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { buildIfStale } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleLogger } from "../src/index.js";
import { DEMO_PASSWORD, pythonSmtp, startSmtpEmulator, textMessage, waitFor } from "./bridge-env.js";

const root = join(import.meta.dirname, "..");
let emulator: TestEmulator;

beforeAll(async () => {
  buildIfStale({ root, output: "dist/bin.js" });
  emulator = await startSmtpEmulator();
});
afterAll(async () => {
  await emulator?.stop();
});

describe('"logFormat": "json"', () => {
  it("writes one JSON object per event; data cannot replace time, level or message", () => {
    const lines: string[] = [];
    const log = consoleLogger("info", (line) => lines.push(line), "json");
    log.info("login refused for x\r\n2026-12-04T15:00:00.000Z warn forged", { level: "debug", client: "a" });
    log.debug("below the level");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\r\n]/);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({
      level: "info",
      message: "login refused for x\r\n2026-12-04T15:00:00.000Z warn forged",
      client: "a",
    });
    expect(Date.parse(entry.time)).not.toBeNaN();
  });

  it("makes every line the bridge writes on stderr JSON, a session's fields included, and no password", async () => {
    const configPath = join(emulator.dataDir, "json-logs.json");
    await writeFile(
      configPath,
      JSON.stringify({
        dataDir: join(emulator.dataDir, "json-logs"),
        logFormat: "json",
        listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
        accounts: [{ credentials: { mode: "passthrough", username: "support@contoso.com" } }],
      }),
    );
    const child = spawn(process.execPath, [join(root, "dist", "bin.js"), "--config", configPath], {
      env: { ...process.env, ...emulator.env() },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (c) => {
      stderr += c;
    });
    try {
      const port = await waitFor(
        async () => Number(/smtp on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]) || undefined,
      );
      const sent = await pythonSmtp({
        port,
        username: "support@contoso.com",
        password: DEMO_PASSWORD,
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: "json logs" }),
      });
      expect(sent.stdout.trim()).toBe("OK");
      const wrong = await pythonSmtp({
        port,
        username: "support@contoso.com",
        password: "Wrong-Password-123",
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: "x",
      });
      expect(wrong.stdout.trim()).toMatch(/^ERR 535/);
      await waitFor(async () => (stderr.match(/"session":/g) ?? []).length >= 2);
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
    const entries = stderr
      .split("\n")
      .filter((line) => line !== "")
      .map(
        (line) => JSON.parse(line) as { level: string; message: string; session?: Record<string, unknown> },
      );
    expect(entries.map((e) => e.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^m365-mail bridge: smtp on 127\.0\.0\.1:\d+$/),
        expect.stringMatching(/^m365-mail bridge: stopping/),
      ]),
    );
    const sessions = entries.filter((e) => e.session).map((e) => [e.level, e.session]);
    expect(sessions).toEqual(
      expect.arrayContaining([
        ["info", expect.objectContaining({ protocol: "smtp", account: "support@contoso.com", result: "ok" })],
        ["warn", expect.objectContaining({ protocol: "smtp", result: "auth-failed" })],
      ]),
    );
    expect(stderr).not.toContain(DEMO_PASSWORD);
    expect(stderr).not.toContain("Wrong-Password-123");
  });
});
