import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadServerConfig } from "../src/config.js";
import { SERVER_MAIN } from "./helpers.js";

describe("configuration", () => {
  it("names what is missing for a real tenant and where to find it", () => {
    expect(() => loadServerConfig({ API_KEYS: `a:${"0".repeat(64)}` }, [])).toThrow(
      expect.objectContaining({
        code: "CONFIG_INVALID",
        message: expect.stringContaining("M365_TENANT_ID, M365_CLIENT_ID, M365_USERNAME, M365_PASSWORD"),
      }),
    );
  });

  it("refuses to start without API keys, and never echoes a raw key pasted into API_KEYS", () => {
    expect(() => loadServerConfig({}, [])).toThrow(/no API keys configured/);
    try {
      loadServerConfig({ API_KEYS: "ops:m365_Raw-Key-That-Must-Not-Leak" }, []);
      expect.unreachable();
    } catch (error) {
      expect(String((error as Error).message)).not.toContain("Raw-Key");
      expect((error as { hint: string }).hint).toContain("--new-api-key");
    }
  });

  // M365_* is read by core's one module, as in the CLI (apps/cli/test/config.test.ts has the same cases).
  const tenant = {
    API_KEYS: `a:${"0".repeat(64)}`,
    M365_TENANT_ID: "tenant",
    M365_CLIENT_ID: "client",
    M365_USERNAME: "support@contoso.com",
    M365_PASSWORD: "Server-Config-Pa55",
  };

  it("M365_* variables set the cloud, hosts, ports and engine", () => {
    const m365 = loadServerConfig(
      {
        ...tenant,
        M365_CLOUD: "china",
        M365_AUTHORITY_HOST: "https://127.0.0.1:9443/",
        M365_GRAPH_ORIGIN: "https://127.0.0.1:9444",
        M365_SMTP_PORT: "2525",
        M365_IMAP_HOST: "imap.local",
        M365_ENGINE: "http",
      },
      [],
    ).m365;
    expect(m365?.cloud).toMatchObject({
      name: "china",
      authorityHost: "https://127.0.0.1:9443",
      graphOrigin: "https://127.0.0.1:9444",
      smtp: { host: "smtp.partner.outlook.cn", port: 2525 },
      imap: { host: "imap.local", port: 993 },
    });
    expect(m365).toMatchObject({ engine: "http", tenantId: "tenant", clientId: "client" });
  });

  it.each([
    ["M365_CLOUD", "azure"],
    ["M365_SMTP_PORT", "70000"],
    ["M365_AUTHORITY_HOST", "http://login.local"],
    ["M365_ENGINE", "adal"],
    ["M365_CA_FILE", "/nonexistent/ca.pem"],
  ])("%s=%s is CONFIG_INVALID naming the variable", (name, value) => {
    expect(() => loadServerConfig({ ...tenant, [name]: value }, [])).toThrow(
      expect.objectContaining({
        code: "CONFIG_INVALID",
        source: "server",
        hint: expect.stringContaining(name),
      }),
    );
  });

  it("M365_PASSWORD_FILE wins over M365_PASSWORD (as in the CLI)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "m365-server-config-"));
    try {
      const file = join(dir, "password");
      await writeFile(file, "From-The-File-Pa55\n");
      expect(loadServerConfig({ ...tenant, M365_PASSWORD_FILE: file }, []).m365?.password).toBe(
        "From-The-File-Pa55",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("OUTBOX=redis needs REDIS_URL; unknown values are named", () => {
    expect(() => loadServerConfig({ OUTBOX: "redis" }, ["--emulator"])).toThrow(/REDIS_URL/);
    expect(() => loadServerConfig({ OUTBOX: "kafka" }, ["--emulator"])).toThrow(
      /OUTBOX must be one of sqlite, redis/,
    );
  });
});

it("`node dist/main.js --emulator` starts emulator and server in one command, prints a dev key and the page link, stops on SIGTERM", {
  timeout: 90_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "m365-server-main-"));
  const child = spawn(process.execPath, [SERVER_MAIN, "--emulator", "--port", "0"], {
    env: { PATH: process.env.PATH ?? "", M365_EMULATOR_HOME: home, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    await expect
      .poll(() => /web page: +(http:\S+)#key=(\S+)/.test(out), { timeout: 60_000, interval: 200 })
      .toBe(true);
    const [, url, key] = /web page: +(http:\S+)\/#key=(\S+)/.exec(out)!;
    expect((await fetch(`${url}/`)).headers.get("content-security-policy")).toContain("default-src 'self'");
    const me = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${key}` } });
    expect(await me.json()).toMatchObject({ username: "support@contoso.com", outbox: "sqlite" });
    const ready = (await (await fetch(`${url}/readyz`)).json()) as {
      ready: boolean;
      checks: Array<{ name: string; ok: boolean }>;
    };
    expect(ready.checks.filter((c) => !c.ok)).toEqual([]);
    expect(ready.ready).toBe(true);

    // New mail reaches the Server-Sent Events (over IMAP IDLE when Dovecot runs, else Graph delta).
    const controller = new AbortController();
    const events = await fetch(`${url}/v1/events`, {
      headers: { authorization: `Bearer ${key}` },
      signal: controller.signal,
    });
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let stream = "";
    const seen = (async () => {
      while (!/event: mail\ndata: .*"subject":"one command"/.test(stream)) {
        const { value, done } = await reader.read();
        if (done) return;
        stream += value;
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await fetch(`${url}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ to: "support@contoso.com", subject: "one command", text: "hello" }),
    });
    expect(sent.status).toBe(202);
    await Promise.race([
      seen,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no mail event: ${stream}`)), 30_000)),
    ]);
    controller.abort();
  } finally {
    child.kill("SIGTERM");
    const code = await exited;
    await rm(home, { recursive: true, force: true });
    expect(code, out).toBe(0);
  }
});
