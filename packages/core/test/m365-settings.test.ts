import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLOUDS,
  M365_SETTINGS,
  type M365SettingName,
  m365PasswordSource,
  redact,
  resolveM365Settings,
} from "../src/index.js";

const readTextFile = (path: string) => readFileSync(path, "utf8");
const fromEnv = (env: Record<string, string>) => ({
  lookup: (name: M365SettingName) => env[M365_SETTINGS[name].env],
  readTextFile,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "m365-settings-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("resolveM365Settings", () => {
  it("M365_AUTH is ropc or device-code; M365_TOKEN_CACHE_FILE is passed through", () => {
    expect(
      resolveM365Settings(fromEnv({ M365_AUTH: "device-code", M365_TOKEN_CACHE_FILE: "/var/lib/m/t.json" })),
    ).toMatchObject({ auth: "device-code", tokenCacheFile: "/var/lib/m/t.json" });
    expect(() => resolveM365Settings(fromEnv({ M365_AUTH: "password" }))).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", hint: expect.stringContaining("M365_AUTH") }),
    );
  });

  it("without settings: the global cloud's hosts and ports, nothing else", () => {
    const settings = resolveM365Settings(fromEnv({}));
    expect(settings).toEqual({ cloud: CLOUDS.global });
  });

  it("applies every override to the chosen cloud and reads the CA file", async () => {
    const caFile = join(dir, "ca.pem");
    await writeFile(caFile, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const settings = resolveM365Settings(
      fromEnv({
        M365_TENANT_ID: "t",
        M365_CLIENT_ID: "c",
        M365_USERNAME: "u@contoso.com",
        M365_CLOUD: "usgovhigh",
        M365_AUTHORITY_HOST: "https://127.0.0.1:8443/",
        M365_GRAPH_ORIGIN: "https://127.0.0.1:8444//",
        M365_SMTP_HOST: "127.0.0.1",
        M365_SMTP_PORT: "2587",
        M365_IMAP_PORT: "2993",
        M365_POP3_HOST: "pop.local",
        M365_CA_FILE: caFile,
        M365_ENGINE: "http",
      }),
    );
    expect(settings).toMatchObject({
      tenantId: "t",
      clientId: "c",
      username: "u@contoso.com",
      caFile,
      engine: "http",
      cloud: {
        name: "usgovhigh",
        authorityHost: "https://127.0.0.1:8443",
        graphOrigin: "https://127.0.0.1:8444",
        graphEndpoint: CLOUDS.usgovhigh.graphEndpoint,
        smtp: { host: "127.0.0.1", port: 2587 },
        imap: { host: CLOUDS.usgovhigh.imap.host, port: 2993 },
        pop3: { host: "pop.local", port: 995 },
      },
    });
    expect(settings.ca).toContain("BEGIN CERTIFICATE");
  });

  it("an empty value counts as unset", () => {
    expect(resolveM365Settings(fromEnv({ M365_CLOUD: "", M365_SMTP_PORT: "" })).cloud).toEqual(CLOUDS.global);
  });

  it.each([
    [
      { M365_CLOUD: "azure" },
      /unknown cloud "azure"/,
      "Set M365_CLOUD to one of: global, usgovhigh, usdod, china.",
    ],
    [
      { M365_SMTP_PORT: "0" },
      /SMTP port must be a whole number from 1 to 65535, got "0"/,
      "Fix M365_SMTP_PORT.",
    ],
    [{ M365_IMAP_PORT: "99999" }, /IMAP port/, "Fix M365_IMAP_PORT."],
    [{ M365_POP3_PORT: "99.5" }, /POP3 port/, "Fix M365_POP3_PORT."],
    [
      { M365_AUTHORITY_HOST: "http://login" },
      /must be an https:\/\/ URL/,
      /^Set M365_AUTHORITY_HOST to e\.g\./,
    ],
    [{ M365_ENGINE: "adal" }, /unknown engine "adal"/, "Set M365_ENGINE to msal (default) or http."],
    [
      { M365_CA_FILE: "/nonexistent/ca.pem" },
      /cannot read the CA file \/nonexistent\/ca\.pem/,
      /^Point M365_CA_FILE at/,
    ],
  ])("refuses %o with CONFIG_INVALID naming the variable", (env, message, hint) => {
    let caught: unknown;
    try {
      resolveM365Settings({ ...fromEnv(env), source: "server" });
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({
      code: "CONFIG_INVALID",
      source: "server",
      message: expect.stringMatching(message),
    });
    expect((caught as { hint: string }).hint).toMatch(hint);
  });

  it("names a setting in the caller's words (the CLI's flag and variable)", () => {
    expect(() =>
      resolveM365Settings({
        ...fromEnv({ M365_ENGINE: "adal" }),
        describe: (name) => `--${M365_SETTINGS[name].flag} / ${M365_SETTINGS[name].env}`,
      }),
    ).toThrow(expect.objectContaining({ hint: "Set --engine / M365_ENGINE to msal (default) or http." }));
  });
});

describe("m365PasswordSource", () => {
  it("M365_PASSWORD_FILE wins over M365_PASSWORD; one trailing newline is dropped; the password is redacted", async () => {
    const file = join(dir, "password");
    await writeFile(file, "Fil3-Pa55word-Xy\n");
    const source = m365PasswordSource(
      { M365_PASSWORD_FILE: file, M365_PASSWORD: "Literal-Pa55word-Xy" },
      { readTextFile },
    );
    expect(source?.description).toBe(`M365_PASSWORD_FILE ${file}`);
    expect(source?.read()).toBe("Fil3-Pa55word-Xy");
    expect(redact("it was Fil3-Pa55word-Xy")).not.toContain("Fil3-Pa55word-Xy");
  });

  it("M365_PASSWORD alone is used and redacted; neither set is undefined", () => {
    const source = m365PasswordSource({ M365_PASSWORD: "Only-Literal-Pa55" }, { readTextFile });
    expect(source?.description).toBe("M365_PASSWORD");
    expect(source?.read()).toBe("Only-Literal-Pa55");
    expect(redact("Only-Literal-Pa55")).not.toContain("Only-Literal-Pa55");
    expect(m365PasswordSource({}, { readTextFile })).toBeUndefined();
  });

  it("an unreadable password file is CONFIG_INVALID naming the variable, read only when asked", () => {
    const source = m365PasswordSource(
      { M365_PASSWORD_FILE: "/nonexistent/pw" },
      { readTextFile, source: "cli" },
    );
    expect(() => source?.read()).toThrow(
      expect.objectContaining({
        code: "CONFIG_INVALID",
        source: "cli",
        hint: expect.stringContaining("M365_PASSWORD_FILE"),
      }),
    );
  });
});
