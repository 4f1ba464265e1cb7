import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTokenCache, ropcTokenProvider } from "@m365-mail/auth-ropc";
import { isM365MailError, type SignInHealthEvent } from "@m365-mail/core";
import {
  dovecotPart,
  graphPart,
  startTestEmulator,
  type TestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { graphTransport } from "@m365-mail/transport-graph";
import { imapTransport } from "@m365-mail/transport-imap";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { DeviceCodeInfo } from "../src/device-code-flow.js";
import {
  type DeviceCodeTokenProviderOptions,
  deviceCodeTokenProvider,
} from "../src/device-code-token-provider.js";

// ROPC cannot sign this user in (MFA required): the reason the device code provider exists.
const USER = "mfa@contoso.com";

let emu: TestEmulator;
let dir: string;
const key = randomBytes(32);

beforeAll(async () => {
  emu = await startTestEmulator({ prefix: "auth-device-code-", parts: [graphPart(), dovecotPart()] });
  dir = await mkdtemp(join(tmpdir(), "auth-device-code-cache-"));
});
afterAll(async () => {
  await emu?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  emu.admin.updateDeviceCodeSettings({
    intervalSeconds: 1,
    expiresInSeconds: 900,
    enforcedIntervalSeconds: 0,
  });
  emu.admin.resetCounts();
});

function options(extra: Partial<DeviceCodeTokenProviderOptions> = {}): DeviceCodeTokenProviderOptions {
  const { password: _password, ...rest } = tokenProviderOptions(emu, USER);
  return { ...rest, retry: { attempts: 0 }, ...extra };
}

/** Approves each code through the emulator's admin API once the provider has polled at least once. */
function approveAfter(ms: number, upn = USER, seen: DeviceCodeInfo[] = []) {
  return (info: DeviceCodeInfo) => {
    seen.push(info);
    setTimeout(() => emu.admin.approveDeviceCode(info.userCode, upn), ms);
  };
}

function mime(subject: string): Uint8Array {
  return Buffer.from(
    `From: sender@example.com\r\nTo: ${USER}\r\nSubject: ${subject}\r\nMessage-ID: <${randomBytes(6).toString("hex")}@example.com>\r\nDate: ${new Date().toUTCString()}\r\n\r\nHello.\r\n`,
  );
}

describe("deviceCodeTokenProvider against the emulator", () => {
  it("signs in when the code is approved while it polls, then reads mail over Graph and IMAP", async () => {
    const subject = `device code ${randomBytes(4).toString("hex")}`;
    await emu.store.deliver(USER, "inbox", mime(subject));
    const ropc = ropcTokenProvider({
      ...tokenProviderOptions(emu, USER),
      engine: "http",
      retry: { attempts: 0 },
    });
    await expect(ropc.getAccessToken("graph")).rejects.toMatchObject({ code: "MFA_REQUIRED" });
    await ropc.dispose();
    emu.admin.resetCounts();

    const seen: DeviceCodeInfo[] = [];
    const auth = deviceCodeTokenProvider(
      options({
        onDeviceCode: approveAfter(1500, USER, seen),
        cache: fileTokenCache({ path: join(dir, "a.json"), key }),
      }),
    );
    const graph = graphTransport({ auth, ca: emu.caPem });
    const imap = imapTransport({ auth, ca: emu.caPem, timeoutMs: 20_000 });
    try {
      const viaGraph = [];
      for await (const m of graph.listMessages!({ folder: "inbox" })) viaGraph.push(m.subject);
      expect(viaGraph).toContain(subject);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.verificationUri).toBe(`${emu.authorityHost}/devicelogin`);
      expect(seen[0]!.message).toContain(seen[0]!.userCode);
      expect(seen[0]!.expiresAt.getTime()).toBeGreaterThan(Date.now());
      const counts = emu.admin.counts();
      // It polled while nobody had approved yet, then redeemed the code once.
      expect(counts["entra.token.error.70016"]).toBeGreaterThanOrEqual(1);
      expect(counts[`entra.token.device_code:${USER}`]).toBe(1);

      const viaImap = [];
      for await (const m of imap.listMessages!({ folder: "INBOX" })) viaImap.push(m.subject);
      expect(viaImap).toContain(subject);
      const after = emu.admin.counts();
      // Outlook came from the refresh token: no second code, no password grant.
      expect(after["entra.devicecode"]).toBe(1);
      expect(after[`entra.token.refresh_token:${USER}`]).toBeGreaterThanOrEqual(1);
      expect(after["entra.token.password"]).toBeUndefined();
      // The cache file holds the sign-in encrypted, never a token in clear.
      const file = await readFile(join(dir, "a.json"), "utf8");
      expect(file).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    } finally {
      await imap.close();
      await graph.close();
      await auth.dispose();
    }
  });

  it("runs headless from the stored sign-in, fails typed when it is revoked, and recovers after a new sign-in", async () => {
    const cache = fileTokenCache({ path: join(dir, "b.json"), key });
    const login = deviceCodeTokenProvider(options({ onDeviceCode: approveAfter(200), cache }));
    const headless = deviceCodeTokenProvider(
      options({ cache: fileTokenCache({ path: join(dir, "b.json"), key }) }),
    );
    const events: SignInHealthEvent[] = [];
    headless.onHealthChange((e) => events.push(e));
    try {
      expect(await headless.hasSignIn()).toBe(false);
      const none = await headless.getAccessToken("graph").catch((e: unknown) => e);
      expect(isM365MailError(none, "SIGN_IN_REQUIRED")).toBe(true);
      expect((none as Error & { hint: string }).hint).toContain("m365-mail login --device-code");

      await login.signIn();
      expect(await headless.hasSignIn()).toBe(true);
      emu.admin.resetCounts();
      const token = await headless.getAccessToken("outlook");
      expect(token.resource).toBe("outlook");
      expect(emu.admin.counts()["entra.devicecode"]).toBeUndefined();

      emu.admin.revokeTokens(USER);
      for (let i = 0; i < 3; i++) {
        const error = await headless.getAccessToken("graph", { forceRefresh: true }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: "REFRESH_EXPIRED", retryable: false, serverCode: "AADSTS50173" });
        expect((error as { hint: string }).hint).toContain("m365-mail login --device-code");
      }
      // A refused refresh token is not sent again: one refusal at Entra ID for three calls.
      expect(emu.admin.counts()["entra.token.error.50173"]).toBe(1);
      expect(events.map((e) => `${e.type}:${e.code}`)).toEqual([
        "problem:SIGN_IN_REQUIRED",
        "recovered:SIGN_IN_REQUIRED",
        "problem:REFRESH_EXPIRED",
      ]);

      await login.signIn();
      await headless.getAccessToken("graph", { forceRefresh: true });
      expect(events.map((e) => `${e.type}:${e.code}`).slice(-1)).toEqual(["recovered:REFRESH_EXPIRED"]);
    } finally {
      await login.dispose();
      await headless.dispose();
    }
  });

  it("turns a declined code into DEVICE_CODE_DECLINED and an expired one into DEVICE_CODE_EXPIRED (one health event)", async () => {
    const declined = deviceCodeTokenProvider(
      options({
        onDeviceCode: (info) => void setTimeout(() => emu.admin.denyDeviceCode(info.userCode), 300),
      }),
    );
    try {
      const error = await declined.getAccessToken("graph").catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: "DEVICE_CODE_DECLINED",
        retryable: false,
        source: "auth-device-code",
      });
    } finally {
      await declined.dispose();
    }

    emu.admin.updateDeviceCodeSettings({ expiresInSeconds: 1 });
    const events: SignInHealthEvent[] = [];
    const expired = deviceCodeTokenProvider(options({ onDeviceCode: () => undefined }));
    expired.onHealthChange((e) => events.push(e));
    try {
      for (let i = 0; i < 2; i++) {
        const error = await expired.getAccessToken("graph").catch((e: unknown) => e);
        expect(error).toMatchObject({ code: "DEVICE_CODE_EXPIRED", serverCode: "AADSTS70019" });
      }
      expect(events.map((e) => `${e.type}:${e.code}`)).toEqual(["problem:DEVICE_CODE_EXPIRED"]);
    } finally {
      await expired.dispose();
    }
  });

  it("waits 5 s longer after slow_down, and stops polling when aborted", async () => {
    // The emulator advertises 1 s but wants 2 s between polls: the second poll gets slow_down.
    emu.admin.updateDeviceCodeSettings({ intervalSeconds: 1, enforcedIntervalSeconds: 2 });
    const started = Date.now();
    const auth = deviceCodeTokenProvider(options({ onDeviceCode: approveAfter(2500) }));
    try {
      await auth.signIn();
      // One slow_down only: after it the provider waited 1 + 5 s, so the next poll was not too soon.
      expect(emu.admin.counts()["entra.token.error.slow_down"]).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(7000);
    } finally {
      await auth.dispose();
    }

    emu.admin.updateDeviceCodeSettings({ enforcedIntervalSeconds: 0 });
    const controller = new AbortController();
    const waiting = deviceCodeTokenProvider(
      options({ onDeviceCode: () => void setTimeout(() => controller.abort(), 200) }),
    );
    try {
      const t0 = Date.now();
      const error = await waiting.signIn({ signal: controller.signal }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "ABORTED" });
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await waiting.dispose();
    }
  }, 30_000);

  it("refuses a code approved by another user than the configured one", async () => {
    const auth = deviceCodeTokenProvider(options({ onDeviceCode: approveAfter(200, "alice@contoso.com") }));
    try {
      const error = await auth.signIn().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "CONFIG_INVALID" });
      expect((error as Error).message).toContain("approved by alice@contoso.com");
      expect(await auth.hasSignIn()).toBe(false);
    } finally {
      await auth.dispose();
    }
  });
});
