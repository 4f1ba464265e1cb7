import { randomBytes } from "node:crypto";
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

describe("everyday operations over Graph (emulator)", () => {
  it("reply, reply-all and forward thread with the original and quote it", async () => {
    const t = fixture.transport();
    const subject = `thread ${tag()}`;
    await t.send({ to: SUPPORT, cc: "shared@contoso.com", subject, text: "the original words" });
    const [original] = await withSubject(t, subject);
    const full = await t.getMessage(original!.id, { raw: true });

    const sent = await t.reply(original!.id, { kind: "reply", text: "my answer" });
    expect(sent.messageId).toMatch(/^<.+>$/);
    const [reply] = await withSubject(t, `RE: ${subject}`);
    const raw = Buffer.from((await t.getMessage(reply!.id, { raw: true })).raw!).toString("utf8");
    expect(raw).toContain(`In-Reply-To: ${full.internetMessageId}`);
    expect(raw).toMatch(new RegExp(`References: .*${full.internetMessageId!.replace(/[.+]/g, "\\$&")}`));
    const body = (await t.getMessage(reply!.id)).text ?? "";
    expect(body.indexOf("my answer")).toBeLessThan(body.indexOf("the original words"));
    expect(body).toContain("the original words");

    // Reply-all goes to the original's other recipients too, never to the mailbox itself.
    const all = await t.reply(original!.id, { kind: "replyAll", text: "to everyone" });
    expect(all.accepted).toContain("shared@contoso.com");

    await t.send({
      to: SUPPORT,
      subject: `${subject} att`,
      text: "see attached",
      attachments: [{ filename: "plan.txt", content: "the plan" }],
    });
    const [withAttachment] = await withSubject(t, `${subject} att`);
    const forwarded = await t.reply(withAttachment!.id, { kind: "forward", to: SUPPORT, text: "fyi" });
    expect(forwarded.accepted).toEqual([SUPPORT]);
    const [fw] = await withSubject(t, `FW: ${subject} att`);
    const fwMessage = await t.getMessage(fw!.id);
    expect(fwMessage.attachments.map((a) => a.filename)).toEqual(["plan.txt"]);
    await expect(t.reply(withAttachment!.id, { kind: "forward", text: "nobody" })).rejects.toMatchObject({
      code: "MESSAGE_INVALID",
    });
  });

  it("a reply in HTML with an added recipient keeps the quoted original and the original's sender", async () => {
    const t = fixture.transport();
    const subject = `html reply ${tag()}`;
    await t.send({ to: SUPPORT, subject, text: "the first words" });
    const [original] = await withSubject(t, subject);
    const sent = await t.reply(original!.id, {
      kind: "reply",
      html: "<p>my <b>answer</b></p>",
      to: "shared@contoso.com",
    });
    expect(sent.accepted).toEqual([SUPPORT, "shared@contoso.com"]);
    const [reply] = await withSubject(t, `RE: ${subject}`);
    const html = (await t.getMessage(reply!.id)).html ?? "";
    expect(html).toContain("my <b>answer</b>");
    expect(html.indexOf("answer")).toBeLessThan(html.indexOf("the first words"));
  });

  it("search by sender, subject and words; flags; drafts created, changed and sent", async () => {
    const t = fixture.transport();
    const word = `zebra${tag()}`;
    await t.send({ to: SUPPORT, subject: `invoice ${word}`, text: "amount due" });
    await t.send({ to: SUPPORT, subject: `other ${tag()}`, text: `mentions ${word} in the body` });
    const bySubject = [];
    for await (const m of t.listMessages({ search: { subject: word } })) bySubject.push(m);
    expect(bySubject.map((m) => m.subject)).toEqual([`invoice ${word}`]);
    const byText = [];
    for await (const m of t.listMessages({ search: { text: word, from: "support" } })) byText.push(m);
    expect(byText).toHaveLength(2);

    const id = bySubject[0]!.id;
    await t.setFlag(id, true);
    expect((await withSubject(t, `invoice ${word}`))[0]!.isFlagged).toBe(true);
    await t.setFlag(id, false);
    expect((await withSubject(t, `invoice ${word}`))[0]!.isFlagged).toBe(false);

    const subject = `draft ${tag()}`;
    const draft = await t.createDraft({ subject, text: "first version" });
    expect(await withSubject(t, subject, "drafts")).toHaveLength(1);
    const updated = await t.updateDraft(draft.id, { to: SUPPORT, text: "second version" });
    const result = await t.sendDraft(updated.id);
    expect(result.accepted).toEqual([SUPPORT]);
    const [arrived] = await withSubject(t, subject);
    expect((await t.getMessage(arrived!.id)).text).toContain("second version");
    expect(await withSubject(t, subject, "drafts")).toHaveLength(0);
  });

  it("downloads a 5 MB attachment as a stream of chunks, byte for byte", async () => {
    const t = fixture.transport();
    const subject = `big ${tag()}`;
    const bytes = randomBytes(5 * 1024 * 1024);
    await t.send({
      to: SUPPORT,
      subject,
      text: "big",
      attachments: [{ filename: "big.bin", content: bytes }],
    });
    const [message] = await withSubject(t, subject);
    const [info] = await t.listAttachments(message!.id);
    expect(info).toMatchObject({ filename: "big.bin", size: bytes.length });
    const download = await t.downloadAttachment(message!.id, info!.id);
    const chunks: Buffer[] = [];
    for await (const chunk of download.content) chunks.push(Buffer.from(chunk));
    expect(chunks.length).toBeGreaterThan(1);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });
});
