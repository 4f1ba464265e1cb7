import type { MessageSummary, OutgoingMessage, Transport } from "@m365-mail/core";
import { expect, it, type TestContext } from "vitest";
import type { ConformanceGroup } from "./conformance-options.js";
import { bytesEqual, randomContent } from "./fixtures.js";
import { waitFor } from "./wait-for.js";

/** What the operation tests need from the suite around them. */
export interface OperationTestContext {
  transport(): Transport;
  group(ctx: TestContext, name: ConformanceGroup): void;
  seeder(ctx: TestContext): (message: OutgoingMessage) => Promise<unknown>;
  tag: string;
  to: string;
  wait: { timeoutMs: number; pollMs: number };
  testTimeout: number;
}

async function collect(iterable: AsyncIterable<MessageSummary>): Promise<MessageSummary[]> {
  const out: MessageSummary[] = [];
  for await (const m of iterable) out.push(m);
  return out;
}

/**
 * The everyday operations, each run when the transport's capabilities claim it: search, manage
 * (read, flag, move, delete), attachments (listed, downloaded as a stream), reply (threaded,
 * quoted; forward with attachments) and drafts (create, update, send).
 */
export function registerOperationTests(c: OperationTestContext): void {
  const { tag, to, wait, testTimeout } = c;
  const inbox = (t: Transport, subject: string, folder = "inbox") =>
    waitFor(
      `"${subject}" in ${folder}`,
      async () =>
        (await collect(t.listMessages!({ folder, pageSize: 50 }))).filter((m) => m.subject === subject),
      (l) => l.length > 0,
      wait,
    );

  it(
    "search finds by words, sender and subject, and nothing else",
    async (ctx) => {
      c.group(ctx, "search");
      const t = c.transport();
      if (!t.capabilities.search || !t.listMessages) ctx.skip("capabilities.search is false");
      const word = `quokka${tag.replace(/[^a-z0-9]/gi, "")}`;
      const subject = `search ${tag}`;
      const from = `Quentin Search <${to}>`;
      await c.seeder(ctx)({ from, to, subject, text: `find the ${word} here` });
      await c.seeder(ctx)({ to, subject: `other ${tag}`, text: "nothing to find" });
      const byWord = await waitFor(
        `a search for ${word}`,
        () => collect(t.listMessages!({ folder: "inbox", search: { text: word } })),
        (l) => l.length > 0,
        wait,
      );
      expect(byWord.map((m) => m.subject)).toEqual([subject]);
      const bySubject = await collect(
        t.listMessages!({ folder: "inbox", search: { subject, from: "quentin" } }),
      );
      expect(bySubject.map((m) => m.subject)).toEqual([subject]);
      expect(await collect(t.listMessages!({ folder: "inbox", search: { text: `${word}zz9` } }))).toEqual([]);
      // Several words in a field: every word, in any order, not a phrase (Graph's KQL `a b`; IMAP used
      // to search the words as one string and found nothing).
      const byWords = await collect(
        t.listMessages!({ folder: "inbox", search: { text: `here ${word} find` } }),
      );
      expect(byWords.map((m) => m.subject)).toEqual([subject]);
      const bySubjectWords = await collect(
        t.listMessages!({ folder: "inbox", search: { subject: `${tag} search` } }),
      );
      expect(bySubjectWords.map((m) => m.subject)).toEqual([subject]);
      const byToWords = await collect(
        t.listMessages!({ folder: "inbox", search: { to: `${to} ${to}`, subject: `${tag} search` } }),
      );
      expect(byToWords.map((m) => m.subject)).toEqual([subject]);
      expect(
        await collect(t.listMessages!({ folder: "inbox", search: { text: `${word} zz9nowhere` } })),
      ).toEqual([]);
    },
    testTimeout,
  );

  it(
    "trashMessage: to Deleted Items (answers the id there); from Deleted Items, deleted for good",
    async (ctx) => {
      c.group(ctx, "manage");
      const t = c.transport();
      if (!t.capabilities.manage || !t.trashMessage) ctx.skip("the transport has no trashMessage");
      const subject = `trash ${tag}`;
      await c.seeder(ctx)({ to, subject, text: "delete me twice" });
      const [message] = await inbox(t, subject);
      const trashed = await t.trashMessage!(message!.id);
      expect(trashed).toEqual(expect.any(String));
      expect((await inbox(t, subject, "trash")).map((m) => m.id)).toEqual([trashed]);
      // Outlook: deleting from Deleted Items deletes for good (it used to be "moved" there again).
      expect(await t.trashMessage!(trashed!)).toBeUndefined();
      const subjects = async (folder: string) =>
        (await collect(t.listMessages!({ folder, pageSize: 50 }))).map((m) => m.subject);
      expect(await subjects("trash")).not.toContain(subject);
      expect(await subjects("inbox")).not.toContain(subject);
    },
    testTimeout,
  );

  it(
    "mark read and unread, flag, move and delete",
    async (ctx) => {
      c.group(ctx, "manage");
      const t = c.transport();
      if (!t.capabilities.manage || !t.markRead || !t.setFlag || !t.moveMessage || !t.deleteMessage)
        ctx.skip("capabilities.manage is false");
      const subject = `manage ${tag}`;
      await c.seeder(ctx)({ to, subject, text: "manage me" });
      const [message] = await inbox(t, subject);
      const state = async (folder = "inbox") => (await inbox(t, subject, folder))[0]!;
      await t.markRead!(message!.id, true);
      await t.setFlag!(message!.id, true);
      expect(await state()).toMatchObject({ isRead: true, isFlagged: true });
      await t.markRead!(message!.id, false);
      await t.setFlag!(message!.id, false);
      expect(await state()).toMatchObject({ isRead: false, isFlagged: false });
      const moved = await t.moveMessage!(message!.id, "archive");
      expect((await state("archive")).id).toBe(moved);
      expect(
        (await collect(t.listMessages!({ folder: "inbox", pageSize: 50 }))).map((m) => m.subject),
      ).not.toContain(subject);
      await t.deleteMessage!(moved);
      expect(
        (await collect(t.listMessages!({ folder: "archive", pageSize: 50 }))).map((m) => m.subject),
      ).not.toContain(subject);
    },
    testTimeout,
  );

  it(
    "attachments are listed and downloaded as a stream, byte for byte",
    async (ctx) => {
      c.group(ctx, "attachments");
      const t = c.transport();
      if (!t.capabilities.attachments || !t.listAttachments || !t.downloadAttachment)
        ctx.skip("capabilities.attachments is false");
      const subject = `attachments ${tag}`;
      const bytes = randomContent(400_000);
      await c.seeder(ctx)({
        to,
        subject,
        text: "see attached",
        attachments: [{ filename: "stream.bin", content: bytes, contentType: "application/octet-stream" }],
      });
      const [message] = await inbox(t, subject);
      const list = await t.listAttachments!(message!.id);
      expect(list.map((a) => a.filename)).toEqual(["stream.bin"]);
      // Sizes may be estimates (IMAP's BODYSTRUCTURE counts encoded bytes): within 2 %.
      expect(Math.abs((list[0]!.size ?? 0) - bytes.length)).toBeLessThan(bytes.length * 0.02);
      const download = await t.downloadAttachment!(message!.id, list[0]!.id);
      const chunks: Uint8Array[] = [];
      for await (const chunk of download.content) chunks.push(chunk);
      expect(chunks.length, "arrived in one piece: not streamed").toBeGreaterThan(1);
      expect(bytesEqual(Buffer.concat(chunks), bytes)).toBe(true);
    },
    testTimeout,
  );

  it(
    "reply threads with the original and quotes it; forward carries the attachments",
    async (ctx) => {
      c.group(ctx, "reply");
      const t = c.transport();
      if (!t.capabilities.reply || !t.reply) ctx.skip("capabilities.reply is false");
      const subject = `reply ${tag}`;
      await c.seeder(ctx)({
        to,
        subject,
        text: "the original text",
        attachments: [{ filename: "keep.txt", content: "kept", contentType: "text/plain" }],
      });
      const [original] = await inbox(t, subject);
      const full = await t.getMessage!(original!.id);
      const sent = await t.reply!(original!.id, { kind: "reply", text: "the answer" });
      expect(sent.messageId).toMatch(/^<[^<>\s]+@[^<>\s]+>$/);
      const replies = await waitFor(
        `the reply to "${subject}"`,
        async () =>
          (await collect(t.listMessages!({ folder: "inbox", pageSize: 50 }))).filter(
            (m) => m.subject !== subject && m.subject.endsWith(subject) && /^re:/i.test(m.subject),
          ),
        (l) => l.length > 0,
        wait,
      );
      const reply = await t.getMessage!(replies[0]!.id);
      const text = reply.text ?? reply.html ?? "";
      expect(text.indexOf("the answer")).toBeGreaterThanOrEqual(0);
      expect(text.indexOf("the original text")).toBeGreaterThan(text.indexOf("the answer"));
      const inReplyTo = Object.entries(reply.headers ?? {}).find(
        ([k]) => k.toLowerCase() === "in-reply-to",
      )?.[1];
      if (reply.headers) expect(inReplyTo).toBe(full.internetMessageId);
      await t.reply!(original!.id, { kind: "forward", to, text: "have a look" });
      const forwards = await waitFor(
        `the forward of "${subject}"`,
        async () =>
          (await collect(t.listMessages!({ folder: "inbox", pageSize: 50 }))).filter(
            (m) => m.subject.endsWith(subject) && /^fw/i.test(m.subject),
          ),
        (l) => l.length > 0,
        wait,
      );
      const forward = await t.getMessage!(forwards[0]!.id);
      expect(forward.attachments.map((a) => a.filename)).toEqual(["keep.txt"]);
    },
    testTimeout,
  );

  it(
    "drafts are saved, changed and sent",
    async (ctx) => {
      c.group(ctx, "drafts");
      const t = c.transport();
      if (!t.capabilities.drafts || !t.createDraft || !t.updateDraft || !t.sendDraft)
        ctx.skip("capabilities.drafts is false");
      const subject = `draft ${tag}`;
      const draft = await t.createDraft!({ subject, text: "first version" });
      expect((await inbox(t, subject, "drafts")).length).toBe(1);
      const updated = await t.updateDraft!(draft.id, { to, text: "second version" });
      const result = await t.sendDraft!(updated.id);
      expect(result.accepted).toEqual([to]);
      const [arrived] = await inbox(t, subject);
      expect((await t.getMessage!(arrived!.id)).text).toContain("second version");
    },
    testTimeout,
  );
}

/** Probes for the operations a transport does not claim: present methods must throw NOT_SUPPORTED. */
export function unsupportedOperationProbes(t: Transport): { name: string; run: () => Promise<unknown> }[] {
  const probes: { name: string; run: () => Promise<unknown> }[] = [];
  const caps = t.capabilities;
  if (!caps.reply && t.reply) probes.push({ name: "reply()", run: () => t.reply!("1", { kind: "reply" }) });
  if (!caps.drafts && t.createDraft) probes.push({ name: "createDraft()", run: () => t.createDraft!({}) });
  if (!caps.manage && t.setFlag) probes.push({ name: "setFlag()", run: () => t.setFlag!("1", true) });
  if (!caps.attachments && t.listAttachments)
    probes.push({ name: "listAttachments()", run: () => t.listAttachments!("1") });
  return probes;
}
