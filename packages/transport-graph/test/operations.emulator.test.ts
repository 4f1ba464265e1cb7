import { randomBytes } from "node:crypto";
import type { MailEvent } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmulatorFixture, SUPPORT, startGraphEmulator, withSubject } from "./emulator-helpers.js";

let fixture: EmulatorFixture;
beforeAll(async () => {
  fixture = await startGraphEmulator();
});
afterAll(async () => {
  await fixture?.stop();
});

const tag = () => randomBytes(4).toString("hex");

describe("graph operations against the emulator", () => {
  it("marks read, moves and deletes, one by one and batched", async () => {
    const t = fixture.transport();
    const subject = `ops ${tag()}`;
    for (let i = 0; i < 3; i++) await t.send({ to: SUPPORT, subject, text: `n${i}` });
    const found = await withSubject(t, subject);
    expect(found).toHaveLength(3);
    const [one, ...rest] = found.map((m) => m.id);

    await t.markRead(one!, true);
    expect((await t.getMessage(one!)).isRead).toBe(true);
    const marked = await t.markReadMany(rest, true);
    expect(marked.every((r) => r.ok)).toBe(true);
    expect((await withSubject(t, subject)).every((m) => m.isRead)).toBe(true);

    const movedId = await t.moveMessage(one!, "archive");
    expect((await withSubject(t, subject, "archive")).map((m) => m.id)).toEqual([movedId]);
    const moved = await t.moveMessages(rest, "junk");
    expect(moved.every((r) => r.ok && r.newId)).toBe(true);
    expect(await withSubject(t, subject)).toHaveLength(0);

    await t.deleteMessage(movedId);
    const deleted = await t.deleteMessages(moved.map((r) => (r.ok ? r.newId! : "")));
    expect(deleted.every((r) => r.ok)).toBe(true);
    // Graph's DELETE is a soft delete: the messages leave every visible folder, Deleted Items included.
    for (const folder of ["inbox", "archive", "junk", "trash"])
      expect(await withSubject(t, subject, folder)).toHaveLength(0);
  });

  it("gets several messages in one batch, and the raw MIME of one", async () => {
    const t = fixture.transport();
    const subject = `batch get ${tag()}`;
    await t.send({ to: SUPPORT, subject, text: "first" });
    await t.send({
      to: SUPPORT,
      subject,
      text: "second",
      attachments: [{ filename: "a.bin", content: new Uint8Array([0, 255, 7]) }],
    });
    const ids = (await withSubject(t, subject)).map((m) => m.id);
    const messages = await t.getMessages(ids);
    expect(messages.map((m) => m.text?.trim()).sort()).toEqual(["first", "second"]);
    expect(messages.flatMap((m) => m.attachments.map((a) => [...a.content]))).toEqual([[0, 255, 7]]);
    const withRaw = await t.getMessage(ids[0]!, { raw: true });
    expect(Buffer.from(withRaw.raw!).toString("latin1")).toContain(`Subject: ${subject}`);
  });

  it("delta reports a new message, then its deletion, from a stored state", async () => {
    const t = fixture.transport();
    const start = await t.delta({ folder: "inbox" });
    const subject = `delta ${tag()}`;
    await t.send({ to: SUPPORT, subject, text: "delta" });
    const afterSend = await t.delta({ state: start.state });
    const created = afterSend.changes.find(
      (c): c is Extract<MailEvent, { type: "created" }> =>
        c.type === "created" && c.message.subject === subject,
    );
    expect(created).toBeDefined();
    await t.deleteMessage(created!.message.id);
    const afterDelete = await t.delta({ state: afterSend.state });
    expect(afterDelete.changes).toContainEqual({ type: "deleted", id: created!.message.id });
  });

  it("lists the calendar events of the coming week", async () => {
    const t = fixture.transport();
    const now = new Date();
    const events = [];
    for await (const e of t.listEvents({ start: now, end: new Date(now.getTime() + 6 * 86_400_000) }))
      events.push(e);
    expect(events.map((e) => e.subject)).toContain("Customer call: Fabrikam escalation");
    expect(events.every((e) => e.end > now && e.start < new Date(now.getTime() + 6 * 86_400_000))).toBe(true);
  });

  it("verify reports every permission check", async () => {
    const report = await fixture.transport().verify();
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["sign-in", true],
      ["User.Read", true],
      ["Mail.Read", true],
      ["Calendars.Read", true],
      ["Mail.Send", true],
    ]);
  });
});
