import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  outboxDrained,
  startTestEmulator,
  startTestServer,
  type TestEmulator,
  USER,
} from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let api: ReturnType<typeof client>;
const SENT = 7;

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, { WATCH_VIA: "off" });
  api = client(srv.url, srv.key);
  for (let i = 0; i < SENT; i++) {
    const res = await api("/v1/messages", {
      method: "POST",
      body: JSON.stringify({ to: USER, subject: `page ${i}`, text: `message ${i}` }),
    });
    expect(res.status).toBe(202);
  }
  await outboxDrained(srv.url, srv.key, 30_000);
}, 90_000);
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

/** Follows Next-Cursor from the first page to the last; returns every page's ids. */
async function allPages(path: string): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 50; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await api(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    expect(res.status).toBe(200);
    pages.push(((await res.json()) as Array<{ id: string }>).map((e) => e.id));
    cursor = res.headers.get("next-cursor");
    if (cursor) expect(res.headers.get("link")).toMatch(/^<\/v1\/[^>]*cursor=[^>]*>; rel="next"$/);
    if (!cursor) return pages;
  }
  throw new Error("pagination did not end");
}

describe("pagination of listings", () => {
  it("GET /v1/outbox: pages of `limit` through every message, newest first, none twice, then no cursor", async () => {
    const whole = ((await (await api("/v1/outbox?limit=100")).json()) as Array<{ id: string }>).map(
      (e) => e.id,
    );
    expect(whole).toHaveLength(SENT);
    const pages = await allPages("/v1/outbox?limit=3");
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(whole);
    // The same with a state filter carried along.
    expect((await allPages("/v1/outbox?limit=2&state=sent")).flat()).toEqual(whole);
  });

  it("GET /v1/messages: pages through a folder as one long listing would", async () => {
    const res = await api("/v1/messages?folder=inbox&limit=200");
    const whole = ((await res.json()) as Array<{ id: string }>).map((e) => e.id);
    expect(whole.length).toBeGreaterThanOrEqual(SENT);
    expect(res.headers.get("next-cursor")).toBeNull();
    const pages = await allPages("/v1/messages?folder=inbox&limit=3");
    expect(pages.flat()).toEqual(whole);
    expect(pages.slice(0, -1).every((p) => p.length === 3)).toBe(true);
  });

  it("refuses a cursor it did not give out, with the error shape and a hint", async () => {
    for (const path of ["/v1/outbox?cursor=bm90LWEtY3Vyc29y", "/v1/messages?cursor=%7B%7D"]) {
      const res = await api(path);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; hint: string } };
      expect(body.error.hint).toContain("Next-Cursor");
    }
  });

  it("documents cursor and Next-Cursor in the OpenAPI document", async () => {
    const doc = (await (await fetch(`${srv.url}/openapi.json`)).json()) as any;
    for (const path of ["/v1/outbox", "/v1/messages"]) {
      const op = doc.paths[path].get;
      expect(op.parameters.map((p: { name: string }) => p.name)).toContain("cursor");
      expect(Object.keys(op.responses["200"].headers ?? {})).toContain("next-cursor");
    }
  });
});
