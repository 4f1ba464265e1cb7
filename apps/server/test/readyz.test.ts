import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEmulator, startTestServer, type TestEmulator } from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
const CACHE_MS = 1500;

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, { WATCH_VIA: "off", READYZ_CACHE_MS: String(CACHE_MS) });
}, 60_000);
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

/** Everything the emulator counted (Graph requests, SMTP connections, sign-ins …). */
const emulatorRequests = () =>
  Object.values(emu.emulator.admin.counts() as Record<string, number>).reduce((a, b) => a + b, 0);
const graphRequests = () => (emu.emulator.admin.counts() as Record<string, number>)["graph.requests"] ?? 0;
const readyz = (key?: string) =>
  fetch(`${srv.url}/readyz`, key ? { headers: { authorization: `Bearer ${key}` } } : {});

describe("/readyz", () => {
  it("without a key says only ok or not per component; with one, the details", async () => {
    const anonymous = await readyz();
    expect(anonymous.status).toBe(200);
    const body = (await anonymous.json()) as Record<string, unknown> & { checks: object[] };
    expect(Object.keys(body).sort()).toEqual(["checks", "ready"]);
    expect(body.checks.length).toBeGreaterThan(3);
    for (const check of body.checks) expect(Object.keys(check).sort()).toEqual(["name", "ok"]);

    const keyed = (await (await readyz(srv.key)).json()) as { signIn?: { username?: string } };
    expect(keyed.signIn).toBeDefined();
    // A wrong key is treated as none (no 401: probes need no key).
    const wrong = (await (await readyz("m365_wrong")).json()) as Record<string, unknown>;
    expect(wrong.signIn).toBeUndefined();
  });

  it("makes at most one round of live checks per cache period, however many probes come", async () => {
    // Let the first test's round age out, then take one round's cost.
    await new Promise((r) => setTimeout(r, CACHE_MS + 100));
    const g0 = graphRequests();
    expect((await readyz()).status).toBe(200);
    const oneRound = graphRequests() - g0;
    expect(oneRound).toBeGreaterThan(0);

    // 60 probes inside the cache period, keyed and not, many at once: nothing reaches the emulator.
    const before = emulatorRequests();
    const statuses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => readyz(i % 2 ? srv.key : undefined).then((r) => r.status)),
    );
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(emulatorRequests()).toBe(before);

    // After the period, 30 probes at once share one new round.
    await new Promise((r) => setTimeout(r, CACHE_MS + 100));
    const g1 = graphRequests();
    await Promise.all(Array.from({ length: 30 }, () => readyz()));
    expect(graphRequests() - g1).toBe(oneRound);
  });
});
