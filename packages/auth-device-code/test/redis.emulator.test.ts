import { randomBytes } from "node:crypto";
import { redisTokenCache } from "@m365-mail/auth-ropc";
import { startTestEmulator, type TestEmulator, tokenProviderOptions } from "@m365-mail/emulator";
import { hasRedis, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceCodeTokenProvider } from "../src/device-code-token-provider.js";

const USER = "mfa@contoso.com";

describe.skipIf(!hasRedis)("deviceCodeTokenProvider with redisTokenCache", () => {
  let emu: TestEmulator;
  let redis: TestRedis;
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis(redis.url, { maxRetriesPerRequest: 2 });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    emu = await startTestEmulator({ prefix: "auth-device-code-redis-", parts: [] });
    emu.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await redis?.stop();
    await emu?.stop();
  });

  it("one sign-in serves every process sharing the Redis cache, encrypted at rest", async () => {
    const key = randomBytes(32);
    const { password: _password, ...rest } = tokenProviderOptions(emu, USER);
    const login = deviceCodeTokenProvider({
      ...rest,
      cache: redisTokenCache({ client: client(), key }),
      onDeviceCode: (info) => void setTimeout(() => emu.admin.approveDeviceCode(info.userCode, USER), 200),
    });
    await login.signIn();
    await login.dispose();

    // Two other processes, headless: the first refreshes for Outlook, the second finds that token in Redis.
    emu.admin.resetCounts();
    const a = deviceCodeTokenProvider({ ...rest, cache: redisTokenCache({ client: client(), key }) });
    const b = deviceCodeTokenProvider({ ...rest, cache: redisTokenCache({ client: client(), key }) });
    try {
      const [ta, tb] = await Promise.all([a.getAccessToken("outlook"), b.getAccessToken("outlook")]);
      expect(ta.resource).toBe("outlook");
      expect(tb.token).toBe(ta.token);
      // The Redis lock around refresh grants: one grant for both, the other read it from the cache.
      expect(emu.admin.counts()[`entra.token.refresh_token:${USER}`]).toBe(1);
      expect(emu.admin.counts()["entra.devicecode"]).toBeUndefined();
      const raw = await client().keys("*");
      expect(raw.length).toBeGreaterThan(0);
      for (const k of raw.filter((k) => !k.endsWith(":lock"))) {
        const value = await client().get(k);
        expect(value ?? "").not.toMatch(/eyJ[\w-]+\.eyJ/);
      }
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});
