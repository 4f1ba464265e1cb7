import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EmulatorPart,
  graphPart,
  startTestEmulator,
  type TestEmulator,
  tokenProviderOptions,
} from "../src/index.js";
import { httpsRequest, passwordGrant } from "./helpers.js";

describe("startTestEmulator", () => {
  let emulator: TestEmulator;
  beforeAll(async () => {
    emulator = await startTestEmulator({ prefix: "m365-test-emulator-test-" });
  });
  afterAll(() => emulator?.stop());

  it("starts every part in a fresh temporary folder that Dovecot's mail user can pass through", async () => {
    expect(basename(emulator.dataDir)).toMatch(/^m365-test-emulator-test-/);
    expect((await stat(emulator.dataDir)).mode & 0o001).toBe(0o001);
    expect(Object.keys(emulator.parts)).toEqual(["graph", "smtp", "dovecot"]);
    expect(emulator.cloud.smtp.port).toBeGreaterThan(0);
    expect(emulator.cloud.graphOrigin).toMatch(/^https:\/\/127\.0\.0\.1:/);
  });

  it("signs in the demo users and serves mail delivered through `store` over Graph", async () => {
    const subject = `arrived ${Date.now()}`;
    await emulator.store.deliver(
      "support@contoso.com",
      "inbox",
      Buffer.from(
        `From: bob@fabrikam.com\r\nTo: support@contoso.com\r\nSubject: ${subject}\r\n\r\nhello\r\n`,
      ),
    );
    const grant = await passwordGrant(emulator, { scope: "https://graph.microsoft.com/Mail.Read" });
    expect(grant.status).toBe(200);
    const list = await httpsRequest(
      emulator,
      `${emulator.cloud.graphOrigin}/v1.0/me/mailFolders/inbox/messages?$select=subject&$top=100`,
      { headers: { authorization: `Bearer ${grant.json.access_token}` } },
    );
    expect(list.status).toBe(200);
    expect(list.json.value.map((m: { subject: string }) => m.subject)).toContain(subject);
  });
  it("hands out the settings a token provider signs in with", async () => {
    const options = tokenProviderOptions(emulator, "alice@contoso.com");
    expect(options).toMatchObject({
      username: "alice@contoso.com",
      ca: emulator.caPem,
      cloud: emulator.cloud,
      authorityHost: emulator.authorityHost,
    });
    const grant = await passwordGrant(emulator, {
      tenant: options.tenantId,
      clientId: options.clientId,
      username: options.username,
      password: options.password,
    });
    expect(grant.status).toBe(200);
    expect(tokenProviderOptions(emulator).username).toBe("support@contoso.com");
  });
});

describe("startTestEmulator's clean-up", () => {
  it("stop() stops the parts and removes the folder, and may be called twice", async () => {
    const emulator = await startTestEmulator({ parts: [graphPart()] });
    const origin = emulator.cloud.graphOrigin!;
    expect(existsSync(emulator.dataDir)).toBe(true);
    await Promise.all([emulator.stop(), emulator.stop()]);
    expect(existsSync(emulator.dataDir)).toBe(false);
    await expect(httpsRequest(emulator, `${origin}/v1.0/me`)).rejects.toThrow();
  });

  it("removes the folder when a part fails to start", async () => {
    let dataDir = "";
    const broken: EmulatorPart = {
      name: "broken",
      async start(context) {
        dataDir = context.dataDir;
        throw new Error("boom");
      },
      async stop() {},
    };
    await expect(startTestEmulator({ parts: [broken] })).rejects.toMatchObject({ code: "CONNECTION_FAILED" });
    expect(dataDir).not.toBe("");
    expect(existsSync(dataDir)).toBe(false);
  });
});
