import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { Output } from "../src/output.js";

// The CLI reads M365_* through core's one module (as the server does: apps/server/test/main.test.ts has
// the same cases); its hints name the flag and the variable.
let dir: string;
const warnings: string[] = [];
const output = () =>
  new Output({
    json: true,
    env: {},
    streams: {
      stdout: { write: () => true } as unknown as NodeJS.WritableStream,
      stderr: { write: (text: string) => warnings.push(text) > 0 } as unknown as NodeJS.WritableStream,
    },
  });
const cli = (env: Record<string, string>, flags: Record<string, string> = {}) =>
  loadConfig({ "env-file": join(dir, "none.env"), config: join(dir, "none.json"), ...flags }, env, output());

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "m365-cli-config-"));
  await writeFile(join(dir, "none.env"), "");
  await writeFile(join(dir, "none.json"), JSON.stringify({ profiles: {} }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("M365_* settings in the CLI", () => {
  const base = {
    M365_TENANT_ID: "tenant",
    M365_CLIENT_ID: "client",
    M365_USERNAME: "support@contoso.com",
    M365_PASSWORD: "Shared-Config-Pa55",
  };

  it("variables set the cloud, hosts, ports and engine", () => {
    const env = {
      ...base,
      M365_CLOUD: "china",
      M365_AUTHORITY_HOST: "https://127.0.0.1:9443/",
      M365_GRAPH_ORIGIN: "https://127.0.0.1:9444",
      M365_SMTP_PORT: "2525",
      M365_IMAP_HOST: "imap.local",
      M365_ENGINE: "http",
    };
    const config = cli(env);
    expect(config.cloud).toMatchObject({
      name: "china",
      authorityHost: "https://127.0.0.1:9443",
      graphOrigin: "https://127.0.0.1:9444",
      smtp: { host: "smtp.partner.outlook.cn", port: 2525 },
      imap: { host: "imap.local", port: 993 },
    });
    expect(config).toMatchObject({ engine: "http", tenantId: "tenant", clientId: "client" });
  });

  it("a flag still beats the variable in the CLI", () => {
    expect(cli({ ...base, M365_SMTP_PORT: "2525" }, { "smtp-port": "2626" }).cloud.smtp.port).toBe(2626);
  });

  it.each([
    ["M365_CLOUD", "azure", "cloud"],
    ["M365_SMTP_PORT", "70000", "smtp-port"],
    ["M365_AUTHORITY_HOST", "http://login.local", "authority-host"],
    ["M365_ENGINE", "adal", "engine"],
    ["M365_CA_FILE", "/nonexistent/ca.pem", "ca-file"],
  ])("%s=%s is CONFIG_INVALID; the hint names the flag and the variable", (name, value, flag) => {
    const env = { ...base, [name]: value };
    expect(() => cli(env)).toThrow(
      expect.objectContaining({
        code: "CONFIG_INVALID",
        source: "cli",
        hint: expect.stringContaining(`--${flag} / ${name}`),
      }),
    );
  });

  it("M365_PASSWORD_FILE wins over M365_PASSWORD (as in the server)", async () => {
    const file = join(dir, "password");
    await writeFile(file, "From-The-File-Pa55\n");
    const env = { ...base, M365_PASSWORD_FILE: file };
    expect(cli(env).password?.read()).toBe("From-The-File-Pa55");
  });
});
