import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REDACTED, redact, registeredSecretCount } from "@m365-mail/core";
import { DEMO_PASSWORD, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileTokenCache } from "../src/cache/file-token-cache.js";
import { memoryTokenCache } from "../src/cache/memory-token-cache.js";
import type { TokenCache } from "../src/cache/token-cache.js";
import { type RopcEngine, ropcTokenProvider } from "../src/ropc-token-provider.js";

// Issue 12, item 6: every refresh registered its new tokens with the redactor and nothing was dropped,
// so a server refreshing for months held every token it ever saw (and scanned them all per log line).

const USER = "support@contoso.com";
// More than the redactor keeps of rotating secrets (2,048, core's redact.ts), so a leak that the cap
// would hide still shows: the assertions allow a handful, not the cap.
const REFRESHES = 2_500;

let emu: TestEmulator;
let dir: string;
beforeAll(async () => {
  // Months of hourly refreshes compressed into seconds: Entra's loop detection (AADSTS50196) would
  // rightly stop a client refreshing this fast, so the emulator's is lifted for this test.
  emu = await startTestEmulator({
    prefix: "auth-ropc-bound-",
    parts: [],
    loopDetection: { maxRequests: 1_000_000 },
  });
  dir = await mkdtemp(join(tmpdir(), "auth-ropc-bound-"));
});
afterAll(async () => {
  await emu?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Keeps the newest refresh token written, to check it is still redacted at the end. */
function recording(inner: TokenCache) {
  const seen = { refreshToken: undefined as string | undefined, msalBlob: undefined as string | undefined };
  const cache: TokenCache = {
    get: (key) => inner.get(key),
    delete: (key) => inner.delete(key),
    async set(key, entry) {
      if (key.endsWith(":rt")) seen.refreshToken = entry.value;
      if (key.endsWith(":msal")) seen.msalBlob = entry.value;
      await inner.set(key, entry);
    },
  };
  return { cache, seen };
}

const total = () => {
  const c = registeredSecretCount();
  return c.permanent + c.rotating;
};

describe.each<[RopcEngine, "memory" | "file", number]>([
  ["http", "memory", REFRESHES],
  // msal reads and writes its whole serialized cache through ours around every refresh (about twice as
  // slow per round here): fewer rounds for the same check, the file cache once for the encrypted path.
  ["msal", "memory", 1_000],
  ["msal", "file", 300],
])("the redactor's secrets stay bounded (engine %s, %s cache)", (engine, kind, rounds) => {
  it(`after ${rounds} forced refreshes it holds no more secrets than after the first sign-in`, async () => {
    const { cache, seen } = recording(
      kind === "memory"
        ? memoryTokenCache()
        : fileTokenCache({ path: join(dir, `${engine}.cache`), key: randomBytes(32) }),
    );
    const provider = ropcTokenProvider({
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      username: USER,
      password: DEMO_PASSWORD,
      cloud: emu.cloud,
      ca: emu.caPem,
      engine,
      cache,
    });
    try {
      await provider.getAccessToken("graph");
      await provider.getAccessToken("outlook");
      const afterSignIn = registeredSecretCount();
      const before = emu.admin.counts()["entra.token.refresh_token"] ?? 0;
      let token = "";
      for (let i = 0; i < rounds; i++) {
        const resource = i % 2 === 0 ? "graph" : "outlook";
        token = (await provider.getAccessToken(resource, { forceRefresh: true })).token;
      }
      // Every round was a real refresh grant at the emulator, not an answer from a cache.
      expect((emu.admin.counts()["entra.token.refresh_token"] ?? 0) - before).toBe(rounds);
      const after = registeredSecretCount();
      expect(after.permanent).toBe(afterSignIn.permanent);
      // Two live access tokens, one refresh token, an id token (and the emulator's copies of the
      // last refresh token it issued and of the password, which live in this process too): a
      // handful, not thousands.
      expect(after.rotating).toBeLessThanOrEqual(afterSignIn.rotating + 2);
      expect(after.rotating).toBeLessThanOrEqual(16);
      // What is held is still what matters: the newest tokens are redacted.
      expect(redact(`token ${token}`)).toBe(`token ${REDACTED}`);
      if (seen.refreshToken) expect(redact(`rt ${seen.refreshToken}`)).toBe(`rt ${REDACTED}`);
      // msal's serialized cache is not registered whole.
      if (seen.msalBlob) expect(redact(seen.msalBlob)).not.toBe(REDACTED);
      expect(total()).toBeLessThan(32);
    } finally {
      await provider.dispose();
    }
  }, 240_000);
});
