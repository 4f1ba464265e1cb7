import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestEmulator, startTestServer, type TestEmulator, USER, waitFor } from "./helpers.js";

let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  emu = await startTestEmulator();
  srv = await startTestServer(emu.emulator);
  api = client(srv.url, srv.key);
});
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

const tag = () => randomBytes(4).toString("hex");
const json = async (res: Response, status = 200) => {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return text ? JSON.parse(text) : undefined;
};
const send = (body: unknown) => api("/v1/messages", { method: "POST", body: JSON.stringify(body) });
const search = (query: Record<string, string>) =>
  api(`/v1/search?${new URLSearchParams(query)}`).then((r) => json(r));
/** Mail is filed a moment after the outbox delivered it. */
const found = (query: Record<string, string>, count = 1) =>
  waitFor(
    async () => {
      const list = await search(query);
      return list.length >= count ? list : undefined;
    },
    20_000,
    `a message matching ${JSON.stringify(query)}`,
  );

describe("everyday operations over the API (Graph)", () => {
  it("search, reply, reply-all, forward, mark, move, delete, attachments streamed", async () => {
    const word = `mango${tag()}`;
    const subject = `api ops ${tag()}`;
    const bytes = randomBytes(200_000);
    await json(
      await send({
        to: USER,
        cc: "alice@contoso.com",
        subject,
        text: `please ${word}`,
        attachments: [{ filename: "data.bin", content: bytes.toString("base64") }],
      }),
      202,
    );
    const [message] = await found({ q: word });
    expect(message.subject).toBe(subject);
    expect(await search({ subject, from: "support" })).toHaveLength(1);
    expect(await search({ subject, from: "nobody-like-this" })).toHaveLength(0);
    expect((await api("/v1/search")).status).toBe(400);

    const replied = await json(
      await api(`/v1/messages/${encodeURIComponent(message.id)}/reply`, {
        method: "POST",
        body: JSON.stringify({ text: "answer" }),
      }),
    );
    expect(replied.messageId).toMatch(/^<.+>$/);
    const all = await json(
      await api(`/v1/messages/${encodeURIComponent(message.id)}/reply-all`, {
        method: "POST",
        body: JSON.stringify({ text: "to all" }),
      }),
    );
    expect(all.accepted).toContain("alice@contoso.com");
    expect(
      (await api(`/v1/messages/${encodeURIComponent(message.id)}/forward`, { method: "POST", body: "{}" }))
        .status,
    ).toBe(400);
    await json(
      await api(`/v1/messages/${encodeURIComponent(message.id)}/forward`, {
        method: "POST",
        body: JSON.stringify({ to: USER, text: "fyi" }),
      }),
    );
    const [fw] = await found({ subject: `FW: ${subject}` });
    const fwRead = await json(await api(`/v1/messages/${encodeURIComponent(fw.id)}`));
    expect(fwRead.attachments.map((a: { filename: string }) => a.filename)).toEqual(["data.bin"]);
    expect(await found({ subject: `RE: ${subject}` }, 2)).toHaveLength(2);

    const path = `/v1/messages/${encodeURIComponent(message.id)}`;
    expect(
      (await api(path, { method: "PATCH", body: JSON.stringify({ isRead: true, isFlagged: true }) })).status,
    ).toBe(204);
    // The replies quote the word too: pick the original.
    const marked = (await search({ q: word })).find((m: { id: string }) => m.id === message.id);
    expect(marked).toMatchObject({ isRead: true, isFlagged: true });

    const [info] = await json(await api(`${path}/attachments`));
    expect(info).toMatchObject({ filename: "data.bin", size: bytes.length });
    const content = await api(`${path}/attachments/${encodeURIComponent(info.id)}/content`);
    expect(content.status).toBe(200);
    expect(content.headers.get("content-disposition")).toContain('filename="data.bin"');
    expect(Buffer.from(await content.arrayBuffer()).equals(bytes)).toBe(true);

    const moved = await json(
      await api(`${path}/move`, { method: "POST", body: JSON.stringify({ folder: "archive" }) }),
    );
    expect(await search({ q: word, folder: "archive" })).toEqual([expect.objectContaining({ id: moved.id })]);
    expect((await search({ q: word })).map((m: { subject: string }) => m.subject)).not.toContain(subject);
    const trashed = await json(
      await api(`/v1/messages/${encodeURIComponent(moved.id)}`, { method: "DELETE" }),
    );
    expect(await search({ q: word, folder: "trash" })).toEqual([expect.objectContaining({ id: trashed.id })]);
    expect(
      (await api(`/v1/messages/${encodeURIComponent(trashed.id)}?permanent=true`, { method: "DELETE" }))
        .status,
    ).toBe(204);
    expect(await search({ q: word, folder: "trash" })).toEqual([]);
    expect((await api(`/v1/messages/${encodeURIComponent(trashed.id)}`)).status).toBe(404);
  }, 120_000);

  it("DELETE of a message in Deleted Items removes it for good (204), as Outlook's Delete key does", async () => {
    // Regression: it was "moved" to Deleted Items again and answered a new id.
    const word = `plum${tag()}`;
    await json(await send({ to: USER, subject: `trash twice ${tag()}`, text: `bin ${word}` }), 202);
    const [message] = await found({ q: word });
    const trashed = await json(
      await api(`/v1/messages/${encodeURIComponent(message.id)}`, { method: "DELETE" }),
    );
    expect(await search({ q: word, folder: "trash" })).toEqual([expect.objectContaining({ id: trashed.id })]);
    const again = await api(`/v1/messages/${encodeURIComponent(trashed.id)}`, { method: "DELETE" });
    expect(again.status, await again.text()).toBe(204);
    expect(await search({ q: word, folder: "trash" })).toEqual([]);
    expect(await search({ q: word })).toEqual([]);
    expect((await api(`/v1/messages/${encodeURIComponent(trashed.id)}`)).status).toBe(404);
  }, 120_000);

  it("drafts: create without recipients, change, send; the OpenAPI document lists every operation", async () => {
    const subject = `api draft ${tag()}`;
    const draft = await json(
      await api("/v1/drafts", { method: "POST", body: JSON.stringify({ subject, text: "v1" }) }),
      201,
    );
    await json(
      await api(`/v1/drafts/${encodeURIComponent(draft.id)}`, {
        method: "PATCH",
        body: JSON.stringify({ to: USER, text: "v2" }),
      }),
    );
    const sent = await json(await api(`/v1/drafts/${encodeURIComponent(draft.id)}/send`, { method: "POST" }));
    expect(sent.accepted).toEqual([USER]);
    const [arrived] = await found({ subject });
    expect((await json(await api(`/v1/messages/${encodeURIComponent(arrived.id)}`))).text.trim()).toBe("v2");

    const doc = await json(await fetch(`${srv.url}/openapi.json`));
    for (const [path, method] of [
      ["/v1/search", "get"],
      ["/v1/messages/{id}/reply", "post"],
      ["/v1/messages/{id}/reply-all", "post"],
      ["/v1/messages/{id}/forward", "post"],
      ["/v1/messages/{id}", "patch"],
      ["/v1/messages/{id}", "delete"],
      ["/v1/messages/{id}/move", "post"],
      ["/v1/messages/{id}/attachments", "get"],
      ["/v1/messages/{id}/attachments/{attachmentId}/content", "get"],
      ["/v1/drafts", "post"],
      ["/v1/drafts/{id}", "patch"],
      ["/v1/drafts/{id}/send", "post"],
    ] as const) {
      expect(doc.paths[path]?.[method]?.summary, `${method} ${path}`).toBeTruthy();
    }
  }, 60_000);
  it("an attachment whose long name has an emoji at the 150th character downloads through both routes", async () => {
    const subject = `api names ${tag()}`;
    const filename = `${"a".repeat(149)}😀 (Bob's).txt`;
    await json(
      await send({
        to: USER,
        subject,
        text: "names",
        attachments: [{ filename, content: Buffer.from("hello").toString("base64") }],
      }),
      202,
    );
    const [message] = await found({ subject });
    const path = `/v1/messages/${encodeURIComponent(message.id)}`;
    const [info] = await json(await api(`${path}/attachments`));
    for (const url of [
      `${path}/attachments/${encodeURIComponent(info.id)}/content`,
      `${path}/attachments/0`,
    ]) {
      const res = await api(url);
      expect(res.status, url).toBe(200);
      const encoded = /filename\*=UTF-8''([^;\s]+)/.exec(res.headers.get("content-disposition") ?? "")?.[1];
      expect(decodeURIComponent(encoded ?? "")).toBe(`${"a".repeat(149)}😀`);
      expect(await res.text()).toBe("hello");
    }
  }, 60_000);
});
