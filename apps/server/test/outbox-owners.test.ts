import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../src/api-keys.js";
import { client, startTestEmulator, startTestServer, type TestEmulator, USER, waitFor } from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
const keyA = generateApiKey();
const keyB = generateApiKey();
const keyAdmin = generateApiKey();
const streams: AbortController[] = [];

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator, {
    API_KEYS: `a:${hashApiKey(keyA)}\nb:${hashApiKey(keyB)}\nops:${hashApiKey(keyAdmin)}:admin`,
    WATCH_VIA: "off",
  });
}, 60_000);
afterAll(async () => {
  for (const c of streams) c.abort();
  await srv?.stop();
  await emu?.stop();
});

/** The text of a key's /v1/events stream, growing until the test ends. */
async function eventText(key: string) {
  const controller = new AbortController();
  streams.push(controller);
  const res = await fetch(`${srv.url}/v1/events`, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const state = { text: "" };
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body!)
        state.text += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch {}
  })();
  return state;
}

describe("outbox visibility per API key", () => {
  it("shows a message and its events only to the key that sent it, and to an admin key", async () => {
    const a = client(srv.url, keyA);
    const b = client(srv.url, keyB);
    const admin = client(srv.url, keyAdmin);
    const streamA = await eventText(keyA);
    const streamB = await eventText(keyB);
    const streamAdmin = await eventText(keyAdmin);

    const accepted = await a("/v1/messages", {
      method: "POST",
      body: JSON.stringify({ to: USER, subject: "owned by a", text: "hello" }),
    });
    expect(accepted.status).toBe(202);
    const { id, owner } = (await accepted.json()) as { id: string; owner: string };
    expect(owner).toBe("a");

    await waitFor(
      async () =>
        streamA.text.includes(`"id":"${id}"`) && streamA.text.includes('"state":"sent"') ? true : undefined,
      15_000,
      "a's stream to see its message sent",
    );
    await waitFor(
      async () => (streamAdmin.text.includes('"state":"sent"') ? true : undefined),
      5000,
      "the admin stream to see it too",
    );
    expect(streamB.text).not.toContain(id);
    expect(streamB.text).not.toContain("event: outbox");

    expect((await a(`/v1/outbox/${id}`)).status).toBe(200);
    expect((await admin(`/v1/outbox/${id}`)).status).toBe(200);
    const hidden = await b(`/v1/outbox/${id}`);
    expect(hidden.status).toBe(404);
    expect(((await hidden.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");

    const ids = async (api: typeof a) =>
      ((await (await api("/v1/outbox")).json()) as Array<{ id: string }>).map((e) => e.id);
    expect(await ids(a)).toContain(id);
    expect(await ids(admin)).toContain(id);
    expect(await ids(b)).not.toContain(id);

    // The resolve endpoint does not tell b that the id exists (a gets 409: it is not uncertain).
    const resolveBody = { method: "POST", body: JSON.stringify({ action: "discard" }) };
    expect((await b(`/v1/outbox/${id}/resolve`, resolveBody)).status).toBe(404);
    expect((await a(`/v1/outbox/${id}/resolve`, resolveBody)).status).toBe(409);
  });
});
