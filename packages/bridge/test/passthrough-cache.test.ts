import { readFile } from "node:fs/promises";
import { memoryTokenCache, type TokenCache } from "@m365-mail/auth-ropc";
import { registeredSecretCount, silentLogger } from "@m365-mail/core";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BridgeConfig,
  createBridgeMetrics,
  createCredentials,
  createLockoutGuard,
  createSignInProblems,
  DEFAULT_LOCKOUT,
  PASSWORD_KEYED_PREFIX,
  passwordKeyedCache,
} from "../src/index.js";
import { collectingLogger, configFor, DEMO_PASSWORD, startSmtpEmulator } from "./bridge-env.js";

let emulator: TestEmulator;
let config: BridgeConfig;
let ca: string;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  config = configFor(emulator, {
    accounts: [{ credentials: { mode: "passthrough", username: "alice@contoso.com" } }],
  });
  ca = await readFile(config.m365.caFile!, "utf8");
});
afterAll(async () => {
  await emulator?.stop();
});

/** A bridge process's credentials over a shared token store (what a file or Redis cache is across restarts). */
function credentialsOver(cache: TokenCache) {
  const metrics = createBridgeMetrics();
  return createCredentials({
    config,
    cache,
    ca,
    guard: createLockoutGuard({ settings: DEFAULT_LOCKOUT, logger: silentLogger }),
    problems: createSignInProblems({ logger: silentLogger, metrics }),
    metrics,
    logger: silentLogger,
  });
}

const client = { address: "127.0.0.1", port: 1, protocol: "imap" as const, tls: false };
const grants = () => emulator.admin.counts()["entra.token.password:alice@contoso.com"] ?? 0;

describe("passthrough token cache", () => {
  it("holds only values sealed with the user's password; after a restart the right password needs no grant, a wrong one gets nothing", async () => {
    const store = memoryTokenCache();
    const written: string[] = [];
    const spy: TokenCache = {
      get: (k) => store.get(k),
      set: (k, e) => {
        written.push(e.value);
        return store.set(k, e);
      },
      delete: (k) => store.delete(k),
    };
    const first = credentialsOver(spy);
    await first.authenticate("alice@contoso.com", DEMO_PASSWORD, client);
    await first.dispose();
    expect(written.length).toBeGreaterThan(0);
    for (const value of written) {
      expect(value.startsWith("pk1.")).toBe(true);
      // A JWT's shape (three dot-separated base64url parts): random base64 ciphertext alone may contain "eyJ…".
      expect(value).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./);
    }
    const before = grants();

    // "Restart": a new process over the same store. The right password opens the cached refresh token.
    const second = credentialsOver(spy);
    await second.authenticate("alice@contoso.com", DEMO_PASSWORD, client);
    expect(grants()).toBe(before);
    // A wrong password cannot open it: Entra is asked, and says no.
    await expect(second.authenticate("alice@contoso.com", "Wrong-Passw0rd-1", client)).rejects.toThrow(
      /wrong username or password/,
    );
    expect(grants()).toBe(before + 1);
    // Wrong passwords are not kept in the redaction list once their sign-in is over.
    const registered = registeredSecretCount();
    for (let i = 2; i < 7; i++) {
      await expect(second.authenticate("alice@contoso.com", `Wrong-Passw0rd-${i}`, client)).rejects.toThrow();
    }
    // At most as many as before: an earlier test file in this worker may still let go of its own.
    const after = registeredSecretCount();
    expect(after.held).toBeLessThanOrEqual(registered.held);
    expect(after.permanent).toBeLessThanOrEqual(registered.permanent);
    await second.dispose();
  });

  it("a changed password just works, and the old one stops working", async () => {
    const credentials = credentialsOver(memoryTokenCache());
    await credentials.authenticate("alice@contoso.com", DEMO_PASSWORD, client);
    emulator.admin.updateUser("alice@contoso.com", { password: "New-Passw0rd-2" });
    const signedIn = await credentials.authenticate("alice@contoso.com", "New-Passw0rd-2", client);
    expect(signedIn.mailbox).toBe("alice@contoso.com");
    // The old password was verified before, but the bridge now knows the new one: the old one is asked about again.
    emulator.admin.revokeTokens("alice@contoso.com");
    await expect(credentials.authenticate("alice@contoso.com", DEMO_PASSWORD, client)).rejects.toThrow(
      /wrong username or password/,
    );
    emulator.admin.updateUser("alice@contoso.com", { password: DEMO_PASSWORD });
    await credentials.dispose();
  });

  it("a device that keeps the old password reaches Entra once with it, then stops at the lockout guard", async () => {
    const credentials = credentialsOver(memoryTokenCache());
    // Short-lived tokens: a verified session must ask Entra again on the next login.
    emulator.admin.setTokenLifetime(1);
    try {
      await credentials.authenticate("alice@contoso.com", DEMO_PASSWORD, client);
      emulator.admin.updateUser("alice@contoso.com", { password: "New-Passw0rd-3" });
      emulator.admin.revokeTokens("alice@contoso.com");
      await new Promise((r) => setTimeout(r, 1_100));
      const before = grants();
      for (let i = 0; i < 5; i++) {
        await expect(credentials.authenticate("alice@contoso.com", DEMO_PASSWORD, client)).rejects.toThrow(
          /wrong username or password|already refused/,
        );
      }
      expect(grants() - before).toBe(1);
      // The new password works.
      const signedIn = await credentials.authenticate("alice@contoso.com", "New-Passw0rd-3", client);
      expect(signedIn.mailbox).toBe("alice@contoso.com");
    } finally {
      emulator.admin.setTokenLifetime(3600);
      emulator.admin.updateUser("alice@contoso.com", { password: DEMO_PASSWORD });
      await credentials.dispose();
    }
  });
});

describe("passwordKeyedCache beside a mapped account's plain entries (audit: token-cache collision)", () => {
  const NAME = "m365-mail:v1:login.example:tenant:app:support@contoso.com:msal";

  it("keeps sealed entries under names of their own: a plain entry of the same name is neither read nor overwritten", async () => {
    const store = memoryTokenCache();
    await store.set(NAME, { value: '{"mapped":"plain msal cache"}' });
    const sealed = passwordKeyedCache(store, "support@contoso.com", DEMO_PASSWORD);
    expect(await sealed.get(NAME)).toBeUndefined();
    await sealed.set(NAME, { value: '{"passthrough":"its own"}' });
    expect((await sealed.get(NAME))?.value).toBe('{"passthrough":"its own"}');
    // Both kinds side by side: the mapped account still finds its own value, untouched.
    expect((await store.get(NAME))?.value).toBe('{"mapped":"plain msal cache"}');
    expect((await store.get(`${PASSWORD_KEYED_PREFIX}${NAME}`))?.value).toMatch(/^pk1\./);
  });

  it("reads a value it cannot open as absent: another password's silently, a foreign value with one warning", async () => {
    const store = memoryTokenCache();
    const logger = collectingLogger();
    const sealed = passwordKeyedCache(store, "support@contoso.com", DEMO_PASSWORD, undefined, logger);
    await passwordKeyedCache(store, "support@contoso.com", "Other-Passw0rd-1").set(NAME, { value: "x" });
    expect(await sealed.get(NAME)).toBeUndefined();
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toEqual([]);
    for (const value of ["not sealed", "pk1.broken", "pk1.AAAA.BBBB.CCCC"]) {
      await store.set(`${PASSWORD_KEYED_PREFIX}${NAME}`, { value });
      expect(await sealed.get(NAME)).toBeUndefined();
    }
    // "not sealed" and "pk1.broken" are foreign; "pk1.AAAA.BBBB.CCCC" has the shape, and does not open.
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toHaveLength(2);
    expect(logger.lines.join("\n")).not.toContain(DEMO_PASSWORD);
  });

  it("moves an entry sealed by an older bridge under the provider's own name (no new password grant)", async () => {
    const store = memoryTokenCache();
    const sealed = passwordKeyedCache(store, "support@contoso.com", DEMO_PASSWORD);
    await sealed.set(NAME, { value: "refresh-token" });
    // As an older bridge stored it: the same sealed value, without the prefix.
    const old = (await store.get(`${PASSWORD_KEYED_PREFIX}${NAME}`))!;
    await store.delete(`${PASSWORD_KEYED_PREFIX}${NAME}`);
    await store.set(NAME, old);
    expect((await sealed.get(NAME))?.value).toBe("refresh-token");
    expect(await store.get(NAME)).toBeUndefined();
    expect((await store.get(`${PASSWORD_KEYED_PREFIX}${NAME}`))?.value).toBe(old.value);
  });
});
