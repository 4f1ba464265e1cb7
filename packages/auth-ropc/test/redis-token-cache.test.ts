import { randomBytes } from "node:crypto";
import { DEMO_PASSWORD, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { redisTokenCache } from "../src/cache/redis-token-cache.js";
import { type RopcEngine, ropcTokenProvider } from "../src/ropc-token-provider.js";

const USER = "support@contoso.com";

// In CI a missing Redis fails this file with the install command; locally the suite skips.
describe.skipIf(!needs("redis"))("redisTokenCache (Redis from Debian's redis-server)", () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  const client = (): Redis => {
    const c = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 2 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await redis?.stop();
  });
  beforeEach(async () => {
    await client().flushall();
  });

  it("round-trips entries between processes' caches; values are encrypted; expiry becomes a Redis TTL", async () => {
    const key = randomBytes(32);
    const a = redisTokenCache({ client: client(), key });
    const b = redisTokenCache({ client: client(), key });
    await a.set("u:rt", { value: "refresh-token-SECRET-123456" });
    await a.set("u:at:graph", {
      value: "access-token-SECRET",
      expiresAt: Date.now() + 60_000,
      scopes: ["x"],
    });

    expect((await b.get("u:rt"))?.value).toBe("refresh-token-SECRET-123456");
    expect((await b.get("u:at:graph"))?.scopes).toEqual(["x"]);
    const raw = await client().get("m365-mail:tokens:u:rt");
    expect(raw).not.toBeNull();
    expect(raw).not.toContain("refresh-token-SECRET");
    const ttl = await client().pttl("m365-mail:tokens:u:at:graph");
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await client().pttl("m365-mail:tokens:u:rt")).toBe(-1);

    await b.delete("u:rt");
    expect(await a.get("u:rt")).toBeUndefined();
  });

  it("reads an entry written with another key, copied under another name or damaged as absent, with a warning", async () => {
    const lines: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => lines.push(m), error() {} };
    const writer = redisTokenCache({ client: client(), key: randomBytes(32), logger });
    await writer.set("k", { value: "secret-value-abcdef" });
    const other = redisTokenCache({ client: client(), key: randomBytes(32), logger });
    expect(await other.get("k")).toBeUndefined();

    const c = client();
    await c.set("m365-mail:tokens:moved", (await c.get("m365-mail:tokens:k"))!);
    expect(await writer.get("moved")).toBeUndefined();
    await c.set("m365-mail:tokens:damaged", "pk1.not-json");
    expect(await writer.get("damaged")).toBeUndefined();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /\[auth-ropc\] the Redis token cache entry m365-mail:tokens:k cannot be read .*M365_CACHE_KEY/,
    );
    expect(lines.join("\n")).not.toContain("secret-value");
    // The next sign-in's entry replaces it.
    await other.set("k", { value: "new-value-123456" });
    expect((await other.get("k"))?.value).toBe("new-value-123456");
  });

  it("needs a 32-byte key", () => {
    const saved = process.env.M365_CACHE_KEY;
    delete process.env.M365_CACHE_KEY;
    try {
      expect(() => redisTokenCache({ client: client() })).toThrow(/M365_CACHE_KEY/);
      expect(() => redisTokenCache({ client: client(), key: randomBytes(16) })).toThrow(/32 bytes/);
    } finally {
      if (saved !== undefined) process.env.M365_CACHE_KEY = saved;
    }
  });

  it("withLock lets one holder in at a time across clients, and frees the lock after a failure", async () => {
    const key = randomBytes(32);
    const caches = [0, 1, 2].map(() => redisTokenCache({ client: client(), key }));
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      caches.flatMap((cache, i) =>
        [0, 1].map(() =>
          cache.withLock("grant", async () => {
            inside++;
            most = Math.max(most, inside);
            await new Promise((r) => setTimeout(r, 30));
            order.push(i);
            inside--;
          }),
        ),
      ),
    );
    expect(most).toBe(1);
    expect(order).toHaveLength(6);

    await expect(
      caches[0]!.withLock("grant", async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    // Released: the next holder gets in at once.
    await expect(caches[1]!.withLock("grant", async () => "ok")).resolves.toBe("ok");
  });

  it("withLock gives up with TIMEOUT when another holder keeps the lock", async () => {
    const key = randomBytes(32);
    const holder = redisTokenCache({ client: client(), key });
    const waiter = redisTokenCache({ client: client(), key, lockWaitMs: 200 });
    let release!: () => void;
    const held = holder.withLock("grant", () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    await expect(waiter.withLock("grant", async () => "never")).rejects.toMatchObject({ code: "TIMEOUT" });
    release();
    await held;
  });

  describe("shared by token providers of several processes (emulator)", () => {
    let emu: TestEmulator;
    beforeAll(async () => {
      emu = await startTestEmulator({ prefix: "auth-ropc-redis-emu-", parts: [] });
    });
    afterAll(() => emu?.stop());

    for (const engine of ["http", "msal"] as RopcEngine[]) {
      it(`${engine}: four providers on one Redis sign in with the password once, whatever they ask for`, async () => {
        emu.admin.resetCounts();
        const key = randomBytes(32);
        const providers = [0, 1, 2, 3].map(() =>
          ropcTokenProvider({
            tenantId: emu.tenantId,
            clientId: emu.clientId,
            username: USER,
            password: DEMO_PASSWORD,
            cloud: emu.cloud,
            ca: emu.caPem,
            engine,
            cache: redisTokenCache({ client: client(), key }),
          }),
        );
        try {
          // Every provider asks for both resources at once, as a freshly started fleet would.
          const tokens = await Promise.all(
            providers.flatMap((p) => [p.getAccessToken("graph"), p.getAccessToken("outlook")]),
          );
          expect(tokens.every((t) => t.token.length > 20)).toBe(true);
          const counts = emu.admin.counts();
          expect(counts["entra.token.password"]).toBe(1);
          // The other resource comes from the refresh token; with the http engine the access tokens
          // themselves are shared, so each resource is fetched once in total.
          if (engine === "http") expect(counts["entra.token.refresh_token"] ?? 0).toBe(1);
        } finally {
          await Promise.all(providers.map((p) => p.dispose()));
        }
      });
    }
  });
});
