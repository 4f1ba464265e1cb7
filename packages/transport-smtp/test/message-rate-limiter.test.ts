import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MessageRateLimiter } from "../src/message-rate-limiter.js";

describe("MessageRateLimiter", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("lets `limit` submissions through, then makes the next wait until the oldest finished one leaves the window", async () => {
    const limiter = new MessageRateLimiter(2, 60_000, () => Date.now());
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    a();
    b();
    let third = false;
    const pending = limiter.acquire().then((release) => {
      third = true;
      return release;
    });
    await vi.advanceTimersByTimeAsync(59_000);
    expect(third).toBe(false);
    await vi.advanceTimersByTimeAsync(1_001);
    expect(third).toBe(true);
    (await pending)();
  });

  it("counts a submission in flight until it ends (the server counts it when it accepts it)", async () => {
    const limiter = new MessageRateLimiter(1, 1_000, () => Date.now());
    const first = await limiter.acquire();
    let second = false;
    const pending = limiter.acquire().then((release) => {
      second = true;
      return release;
    });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(second).toBe(false); // still in flight: the window has not even started
    first();
    await vi.advanceTimersByTimeAsync(999);
    expect(second).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    expect(second).toBe(true);
    (await pending)();
  });

  it("serves waiters in order and rejects an aborted one without blocking the rest", async () => {
    const limiter = new MessageRateLimiter(1, 100, () => Date.now());
    (await limiter.acquire())();
    const order: string[] = [];
    const controller = new AbortController();
    const aborted = limiter.acquire(controller.signal).then(
      () => order.push("aborted-got-slot"),
      (e: { code: string }) => order.push(`aborted:${e.code}`),
    );
    const next = limiter.acquire().then((release) => {
      order.push("next");
      release();
    });
    controller.abort();
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all([aborted, next]);
    expect(order).toEqual(["aborted:ABORTED", "next"]);
  });

  it("is off with 0 or Infinity", async () => {
    for (const limit of [0, Number.POSITIVE_INFINITY]) {
      const limiter = new MessageRateLimiter(limit, 60_000);
      expect(limiter.enabled).toBe(false);
      for (let i = 0; i < 100; i++) await limiter.acquire();
      expect(limiter.inWindow()).toBe(0);
    }
  });
});
