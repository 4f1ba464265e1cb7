import type { SignInHealthEvent } from "@m365-mail/core";
import { startTestEmulator, type TestEmulator, tokenProviderOptions } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RopcEngine, ropcTokenProvider } from "../src/ropc-token-provider.js";

// A user of its own per engine, so that marking one MFA-required does not touch the other suite.
const USERS: Record<RopcEngine, string> = { http: "alice@contoso.com", msal: "support@contoso.com" };

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator({ prefix: "auth-ropc-health-", parts: [] });
});
afterAll(() => emu?.stop());

describe.each(["http", "msal"] as const)("sign-in health events (%s engine)", (engine) => {
  it("reports MFA required once while it lasts, and recovered once when the emulator clears it", async () => {
    const username = USERS[engine];
    const provider = ropcTokenProvider({
      ...tokenProviderOptions(emu, username),
      engine,
      retry: { attempts: 0 },
    });
    const events: SignInHealthEvent[] = [];
    const unsubscribe = provider.onHealthChange((event) => events.push(event));
    try {
      expect(provider.healthState().status).toBe("unknown");
      await provider.getAccessToken("graph");
      expect(provider.healthState().status).toBe("ok");
      expect(events).toEqual([]);

      emu.admin.updateUser(username, { mfa: true });
      for (let i = 0; i < 3; i++) {
        await expect(provider.getAccessToken("graph", { forceRefresh: true })).rejects.toMatchObject({
          code: "MFA_REQUIRED",
        });
      }
      // The other resource fails the same way: still the same problem, no second event.
      await expect(provider.getAccessToken("outlook")).rejects.toMatchObject({ code: "MFA_REQUIRED" });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: "problem",
        provider: "auth-ropc",
        username,
        code: "MFA_REQUIRED",
        serverCode: "AADSTS50076",
      });
      expect(events[0]!.hint).toMatch(/device code/);
      const state = provider.healthState();
      expect(state.status === "problem" && state.code).toBe("MFA_REQUIRED");

      emu.admin.updateUser(username, { mfa: false });
      await provider.getAccessToken("graph", { forceRefresh: true });
      await provider.getAccessToken("outlook", { forceRefresh: true });
      expect(events.map((e) => e.type)).toEqual(["problem", "recovered"]);
      expect(events[1]).toMatchObject({ code: "MFA_REQUIRED", username });
      expect(provider.healthState().status).toBe("ok");
    } finally {
      emu.admin.updateUser(username, { mfa: false });
      unsubscribe();
      await provider.dispose();
    }
  });

  it("reports a change from one problem to another, and ignores outages", async () => {
    const username = USERS[engine];
    const provider = ropcTokenProvider({
      ...tokenProviderOptions(emu, username),
      engine,
      retry: { attempts: 0 },
    });
    const events: SignInHealthEvent[] = [];
    provider.onHealthChange((event) => events.push(event));
    try {
      emu.admin.armFault({ target: "entra", kind: "status500", times: 1 });
      await expect(provider.getAccessToken("graph")).rejects.toMatchObject({ code: "SERVER_ERROR" });
      expect(events).toEqual([]);

      emu.admin.updateUser(username, { passwordExpired: true });
      await expect(provider.getAccessToken("graph")).rejects.toMatchObject({ code: "PASSWORD_EXPIRED" });
      emu.admin.updateUser(username, { passwordExpired: false, locked: true });
      await expect(provider.getAccessToken("graph")).rejects.toMatchObject({ code: "ACCOUNT_LOCKED" });
      await expect(provider.getAccessToken("graph")).rejects.toMatchObject({ code: "ACCOUNT_LOCKED" });
      expect(events.map((e) => `${e.type}:${e.code}`)).toEqual([
        "problem:PASSWORD_EXPIRED",
        "problem:ACCOUNT_LOCKED",
      ]);
    } finally {
      emu.admin.clearFaults();
      emu.admin.updateUser(username, { passwordExpired: false, locked: false });
      await provider.dispose();
    }
  });
});
