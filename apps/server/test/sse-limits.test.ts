import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../src/api-keys.js";
import { startTestEmulator, startTestServer, type TestEmulator, waitFor } from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
const keyA = generateApiKey();
const keyB = generateApiKey();
const streams: AbortController[] = [];

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, {
    API_KEYS: `a:${hashApiKey(keyA)},b:${hashApiKey(keyB)}`,
    WATCH_VIA: "off",
    SSE_MAX_PER_KEY: "2",
    SSE_MAX_CONNECTIONS: "3",
  });
}, 60_000);
afterAll(async () => {
  for (const c of streams) c.abort();
  await srv?.stop();
  await emu?.stop();
});

/** Opens /v1/events; the stream stays open until its controller aborts. */
async function open(key: string) {
  const controller = new AbortController();
  streams.push(controller);
  const res = await fetch(`${srv.url}/v1/events`, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  return { res, controller };
}

describe("SSE connection caps", () => {
  it("refuses streams beyond the per-key and the total cap with 429 and the error shape, and frees a slot on close", async () => {
    const a1 = await open(keyA);
    const a2 = await open(keyA);
    expect([a1.res.status, a2.res.status]).toEqual([200, 200]);

    const a3 = await open(keyA);
    expect(a3.res.status).toBe(429);
    expect(a3.res.headers.get("retry-after")).toBe("5");
    const perKey = (await a3.res.json()) as { error: { code: string; hint: string } };
    expect(perKey.error.code).toBe("TOO_MANY_STREAMS");
    expect(perKey.error.hint).toContain("SSE_MAX_PER_KEY");

    // Another key is not held back by a's streams, until the total is reached.
    const b1 = await open(keyB);
    expect(b1.res.status).toBe(200);
    const b2 = await open(keyB);
    expect(b2.res.status).toBe(429);
    const total = (await b2.res.json()) as { error: { code: string; hint: string } };
    expect(total.error.code).toBe("TOO_MANY_STREAMS");
    expect(total.error.hint).toContain("SSE_MAX_CONNECTIONS");

    // A closed stream gives its slot back (the count follows the socket's close).
    a1.controller.abort();
    const again = await waitFor(
      async () => {
        const next = await open(keyB);
        if (next.res.status === 200) return next;
        await next.res.body?.cancel();
        return undefined;
      },
      5000,
      "a slot freed by a closed stream",
    );
    expect(again.res.status).toBe(200);
  });
});
