import { describe, expect, it } from "vitest";
import { backoffDelay, parseRetryAfter, resolveRetryOptions } from "../src/retry-policy.js";
import { createSemaphore } from "../src/semaphore.js";

describe("semaphore", () => {
  it("grants at most `limit` slots and hands freed slots over in arrival order", async () => {
    const s = createSemaphore(2);
    const order: number[] = [];
    const a = await s.acquire();
    const b = await s.acquire();
    const waiting = [3, 4].map((n) =>
      s.acquire().then((release) => {
        order.push(n);
        return release;
      }),
    );
    expect(s.active).toBe(2);
    expect(s.waiting).toBe(2);
    a();
    a(); // a second release of the same slot changes nothing
    const third = await waiting[0]!;
    expect(order).toEqual([3]);
    expect(s.active).toBe(2);
    b();
    (await waiting[1]!)();
    third();
    expect(order).toEqual([3, 4]);
    expect(s.active).toBe(0);
  });

  it("an aborted waiter leaves the queue with ABORTED", async () => {
    const s = createSemaphore(1);
    const release = await s.acquire();
    const controller = new AbortController();
    const pending = s.acquire(controller.signal);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: "ABORTED" });
    expect(s.waiting).toBe(0);
    release();
    expect(s.active).toBe(0);
  });

  it("refuses a limit below 1", () => {
    expect(() => createSemaphore(0)).toThrow(/maxConcurrency/);
  });
});

describe("retry policy", () => {
  it("reads Retry-After as seconds or as an HTTP date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    const now = Date.parse("2024-05-01T10:00:00Z");
    expect(parseRetryAfter("Wed, 01 May 2024 10:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped at maxDelayMs", () => {
    const options = resolveRetryOptions({ baseDelayMs: 100, maxDelayMs: 1000 });
    expect(backoffDelay(1, options, () => 0)).toBe(50);
    expect(backoffDelay(1, options, () => 1)).toBe(100);
    expect(backoffDelay(3, options, () => 1)).toBe(400);
    expect(backoffDelay(10, options, () => 1)).toBe(1000);
    expect(backoffDelay(10, options, () => 0)).toBe(500);
  });

  it("defaults to 5 attempts", () => {
    expect(resolveRetryOptions(undefined).attempts).toBe(5);
  });
});
