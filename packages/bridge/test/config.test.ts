import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  hashSecret,
  loadBridgeConfig,
  readMappedPassword,
  validateBridgeConfig,
  verifySecret,
} from "../src/index.js";

const m365 = {
  tenantId: "5e7a3f0c-2b1d-4c8e-9f6a-0d4b3c2a1e9f",
  clientId: "b7c1d9e4-6a2f-4f3b-8e5d-1c0a9b8f7e6d",
};
const account = { credentials: { mode: "passthrough", username: "support@contoso.com" } };

describe("bridge config validation", () => {
  it("names the bad key", () => {
    expect(() =>
      validateBridgeConfig({ m365, accounts: [account, account, { credentials: { mode: "magic" } }] }, {}),
    ).toThrow(/accounts\[2\]\.credentials\.mode: must be "passthrough" or "mapped"/);
  });

  it("fills in safe defaults: SMTP on loopback, Microsoft's hosts, memory cache, lockout under Entra's threshold", () => {
    const config = validateBridgeConfig({ m365, accounts: [account] }, {});
    expect(config.listeners).toEqual([
      expect.objectContaining({ protocol: "smtp", host: "127.0.0.1", security: "plain" }),
    ]);
    expect(config.m365.smtp).toEqual({ host: "smtp.office365.com", port: 587 });
    expect(config.m365.imap).toEqual({ host: "outlook.office365.com", port: 993 });
    expect(config.tokenCache).toEqual({ type: "memory" });
    expect(config.lockout.maxFailedGrants).toBeLessThan(10);
    expect(config.accounts[0]).toMatchObject({
      name: "support@contoso.com",
      delivery: "graph",
      answer: "sync",
      sentCopies: "keep",
    });
    expect(() =>
      validateBridgeConfig({ m365, accounts: [{ ...account, sentCopies: "delete" }] }, {}),
    ).toThrow(/accounts\[0\]\.sentCopies: must be "keep" or "drop"/);
    expect(() =>
      validateBridgeConfig(
        {
          m365,
          spool: { type: "sqlite", path: "/tmp/spool.db" },
          accounts: [
            {
              answer: "spool",
              sentCopies: "drop",
              credentials: {
                mode: "mapped",
                login: "erp",
                secretHash: "scrypt$32768$8$1$AA$AA",
                username: "support@contoso.com",
                passwordEnv: "X",
              },
            },
          ],
        },
        {},
      ),
    ).toThrow(/accounts\[0\]\.sentCopies: "drop" needs answer "sync"/);
  });

  it("refuses a non-loopback plain listener without allowedNetworks, and accepts it with one", () => {
    const listener = { protocol: "smtp", host: "0.0.0.0", port: 2525, security: "plain" };
    expect(() => validateBridgeConfig({ m365, accounts: [account], listeners: [listener] }, {})).toThrow(
      /listeners\[0\]\.allowedNetworks: is required for a "plain" listener on 0\.0\.0\.0/,
    );
    const ok = validateBridgeConfig(
      { m365, accounts: [account], listeners: [{ ...listener, allowedNetworks: ["192.168.10.0/24"] }] },
      {},
    );
    expect(ok.listeners[0]!.allowedNetworks).toEqual(["192.168.10.0/24"]);
  });

  it("takes the connection from M365_* variables (m365-mail emulator --write-env)", () => {
    const config = validateBridgeConfig(
      { accounts: [account] },
      {
        M365_TENANT_ID: m365.tenantId,
        M365_CLIENT_ID: m365.clientId,
        M365_AUTHORITY_HOST: "https://127.0.0.1:44443",
        M365_SMTP_HOST: "127.0.0.1",
        M365_SMTP_PORT: "2587",
        M365_GRAPH_ORIGIN: "https://127.0.0.1:4444",
        NODE_EXTRA_CA_CERTS: "/tmp/ca.pem",
      },
    );
    expect(config.m365).toMatchObject({
      authorityHost: "https://127.0.0.1:44443",
      smtp: { host: "127.0.0.1", port: 2587 },
      graphOrigin: "https://127.0.0.1:4444",
      caFile: "/tmp/ca.pem",
    });
  });

  it("refuses a secret written in clear instead of its hash, unknown keys, an open-relay no-AUTH network", () => {
    const mapped = {
      credentials: {
        mode: "mapped",
        login: "scanner",
        secretHash: "hunter22",
        username: "support@contoso.com",
        passwordEnv: "X",
      },
    };
    let message = "";
    try {
      validateBridgeConfig(
        {
          m365,
          accounts: [mapped],
          listners: [],
          listeners: [
            {
              protocol: "smtp",
              port: 2525,
              noAuth: { networks: ["0.0.0.0/0"], account: "scanner", from: "support@contoso.com" },
            },
          ],
        },
        {},
      );
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(
      /accounts\[0\]\.credentials\.secretHash: must be a hash made by `m365-mail bridge hash-secret`/,
    );
    expect(message).toMatch(/listners: is not a known setting/);
    expect(message).toMatch(/listeners\[0\]\.noAuth\.networks: must not contain a \/0 network/);
    expect(message).not.toContain("hunter22");
    // Every spelling of a zero-bit prefix is the same open relay.
    for (const network of ["0.0.0.0/00", " 0.0.0.0/0 ", "::/000"]) {
      expect(() =>
        validateBridgeConfig(
          {
            m365,
            accounts: [
              { ...mapped, credentials: { ...mapped.credentials, secretHash: "scrypt$32768$8$1$AA$AA" } },
            ],
            listeners: [
              {
                protocol: "smtp",
                port: 2525,
                noAuth: { networks: [network], account: "scanner", from: "support@contoso.com" },
              },
            ],
          },
          {},
        ),
      ).toThrow(/must not contain a \/0 network/);
    }
  });
});

describe("mapped credentials", () => {
  it("hash-secret's scrypt hash verifies the secret and nothing else", async () => {
    const hash = await hashSecret("device-secret-1");
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifySecret("device-secret-1", hash)).toBe(true);
    expect(await verifySecret("device-secret-2", hash)).toBe(false);
    expect(await verifySecret("device-secret-1", "scrypt$garbage")).toBe(false);
  });

  it("reads the Microsoft 365 password from a 0600 file and refuses a group- or world-readable one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bridge-pw-"));
    const file = join(dir, "password");
    await writeFile(file, "Secret-Passw0rd\n", { mode: 0o600 });
    const credentials = {
      mode: "mapped" as const,
      login: "scanner",
      secretHash: "scrypt$",
      username: "support@contoso.com",
      passwordFile: file,
    };
    expect(await readMappedPassword("scanner", credentials)).toBe("Secret-Passw0rd");
    await chmod(file, 0o644);
    await expect(readMappedPassword("scanner", credentials)).rejects.toThrow(
      /readable by group or others \(mode 644\).*chmod 600/,
    );
    await expect(
      readMappedPassword(
        "scanner",
        { ...credentials, passwordFile: undefined, passwordEnv: "NOPE_NOT_SET" },
        {},
      ),
    ).rejects.toThrow(/NOPE_NOT_SET is not set/);
  });
});

describe("config files", () => {
  it("reads YAML as well as JSON, and names a syntax error's file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bridge-config-"));
    const yamlPath = join(dir, "bridge.yaml");
    await writeFile(
      yamlPath,
      [
        "m365:",
        `  tenantId: ${m365.tenantId}`,
        `  clientId: ${m365.clientId}`,
        "listeners:",
        "  - { protocol: smtp, port: 2525, security: starttls }",
        "accounts:",
        "  - credentials: { mode: passthrough, domain: contoso.com }",
        "",
      ].join("\n"),
    );
    const config = await loadBridgeConfig(yamlPath, {});
    expect(config.listeners[0]).toMatchObject({ protocol: "smtp", port: 2525, security: "starttls" });
    expect(config.accounts[0]!.name).toBe("@contoso.com");
    const broken = join(dir, "broken.json");
    await writeFile(broken, "{ nope");
    await expect(loadBridgeConfig(broken, {})).rejects.toThrow(/broken\.json is not valid JSON/);
  });
});
