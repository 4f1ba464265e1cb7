/**
 * "accept() resolves only once the message is stored", on Redis: with `appendonly yes` and
 * `appendfsync always` (the setting the README asks for), Redis itself is SIGKILLed while messages are
 * being accepted and delivered, and started again from its append-only file. Every message whose
 * accept() resolved is delivered, exactly once: a job whose completion the crash lost goes through the
 * Sent Items check (here a record of what was sent, standing in for Exchange's folder) before any resend.
 * While Redis is down, accept() is refused at once, so a caller is never left without an answer.
 */
import { randomUUID } from "node:crypto";
import { silentLogger } from "@m365-mail/core";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deliverer, type Outbox, redisOutbox, type SentItemsIndex } from "../src/index.js";

const TOTAL = 300;
const CRASH_AFTER = 100;
const IN_FLIGHT = 20;

describe.skipIf(!needs("redis"))("redisOutbox when Redis itself crashes", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ prefix: "m365-outbox-redis-crash-", durable: true });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("while Redis is down accept() is refused at once (503, with the hint), not left waiting; afterwards it works", async () => {
    const box: Outbox<null> = redisOutbox<null>({
      redisUrl: redis.url,
      prefix: `down-${Date.now()}`,
      concurrency: { graph: 1 },
      maxAttempts: 3,
      retryBaseMs: 20,
      sentItemsGraceMs: 0,
      logger: silentLogger,
      settingNames: { redisUrl: "REDIS_URL" },
      deliver: async () => ({ ok: true, transport: "graph", recovered: false }),
    });
    const message = () => ({
      messageId: `<down-${randomUUID()}@contoso.com>`,
      lane: "graph",
      via: "graph",
      payload: null,
    });
    try {
      await box.start();
      await redis.kill();
      const outcome = await Promise.race([
        box.accept({ message: message() }).then(
          () => "accepted",
          (error: unknown) => error,
        ),
        new Promise((resolve) => setTimeout(() => resolve("still waiting after 5 s"), 5_000)),
      ]);
      expect(outcome).toMatchObject({
        code: "SERVER_ERROR",
        status: 503,
        retryAfterSeconds: 5,
        hint: "Check that Redis is reachable at REDIS_URL.",
      });
      await redis.restart();
      await expect
        .poll(
          () =>
            box.accept({ message: message() }).then(
              (r) => r.entry.state,
              () => "refused",
            ),
          {
            timeout: 15_000,
            interval: 250,
          },
        )
        .toBe("queued");
    } finally {
      await box.close();
    }
  }, 30_000);

  it("every accepted message is delivered exactly once after a SIGKILL of redis-server and a restart", {
    timeout: 90_000,
  }, async () => {
    /** Message-ID → times sent: what reached "Microsoft". */
    const sends = new Map<string, number>();
    const sentItems: SentItemsIndex = {
      available: true,
      reader: "record",
      has: async (messageId) => sends.has(messageId),
    };
    const box: Outbox<null> = redisOutbox<null>({
      redisUrl: redis.url,
      prefix: `crash-${Date.now()}`,
      concurrency: { graph: 4 },
      maxAttempts: 20,
      retryBaseMs: 20,
      sentItemsGraceMs: 0,
      // A job whose worker lost Redis mid-delivery is taken over within about twice this.
      lockDurationMs: 1_000,
      logger: silentLogger,
      deliver: deliverer<null>({
        send: async (message) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          sends.set(message.messageId, (sends.get(message.messageId) ?? 0) + 1);
          return { transport: "graph" };
        },
        sentItems,
        logger: silentLogger,
      }),
    });
    const accepted = new Map<string, string>(); // outbox id → Message-ID
    let refused = 0;
    let crashed: Promise<void> | undefined;
    try {
      await box.start();
      let next = 0;
      const client = async () => {
        while (next < TOTAL) {
          const n = next++;
          const messageId = `<crash-${n}-${randomUUID()}@contoso.com>`;
          try {
            const { entry } = await box.accept({
              message: { messageId, lane: "graph", via: "graph", subject: `crash ${n}`, payload: null },
            });
            accepted.set(entry.id, messageId);
          } catch (error) {
            // Not accepted: the caller was told so at once, and may send it again.
            expect(error).toMatchObject({ code: "SERVER_ERROR", retryable: true, status: 503 });
            refused++;
          }
          if (accepted.size >= CRASH_AFTER && !crashed) {
            crashed = (async () => {
              await redis.kill();
              await new Promise((resolve) => setTimeout(resolve, 500));
              await redis.restart();
            })();
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, client));
      await crashed;
      expect(crashed).toBeDefined();
      expect(accepted.size).toBeGreaterThan(CRASH_AFTER);

      await expect
        .poll(
          async () => {
            let done = 0;
            for (const id of accepted.keys()) if ((await box.get(id))?.state === "sent") done++;
            return done;
          },
          { timeout: 60_000, interval: 500 },
        )
        .toBe(accepted.size);
      const twice = [...accepted.values()].filter((messageId) => (sends.get(messageId) ?? 0) !== 1);
      expect(twice, `${refused} accept() calls were refused during the outage`).toEqual([]);
    } finally {
      await box.close();
    }
  });
});
