import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  expectNoSecrets,
  HAS_DOVECOT,
  parseJson,
  runCli,
  SUPPORT,
  startTestEmulator,
  type TestEmulator,
} from "./helpers.js";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  await emu?.stop();
});

const cli = (args: string[], input?: string) =>
  runCli(args, { env: emu.env(), cwd: emu.home, ...(input !== undefined ? { input } : {}) });
const tag = () => randomBytes(4).toString("hex");
const ok = (result: CliResult) => {
  expectNoSecrets(result);
  expect(result.code, result.stderr + result.stdout).toBe(0);
  return parseJson(result);
};

interface Listed {
  id: string;
  subject: string;
  isRead?: boolean;
  isFlagged?: boolean;
}

/** Polls `search` until `count` messages match (mail is filed a moment after it is accepted). */
async function searchUntil(args: string[], count: number): Promise<Listed[]> {
  let messages: Listed[] = [];
  for (let i = 0; i < 40; i++) {
    messages = ok(await cli(["search", "--json", ...args])).messages;
    if (messages.length >= count) return messages;
    await new Promise((r) => setTimeout(r, 250));
  }
  return messages;
}

async function listed(via: string, folder: string, subject: string): Promise<Listed[]> {
  const all: Listed[] = ok(
    await cli(["list", "--json", "--via", via, "--folder", folder, "-n", "50"]),
  ).messages;
  return all.filter((m) => m.subject.includes(subject));
}

const VIAS = [
  { via: "graph", reply: "RE:", forward: "FW:" },
  ...(HAS_DOVECOT ? [{ via: "imap", reply: "Re:", forward: "Fwd:" }] : []),
];

describe.each(VIAS)("everyday operations over $via", ({ via, reply: re, forward: fw }) => {
  it("search, reply (threaded, quoted), forward with the attachment, mark, download, move, delete", async () => {
    const word = `kiwi${tag()}`;
    const subject = `ops ${via} ${tag()}`;
    const notes = join(emu.home, `notes-${via}.txt`);
    const content = `the notes ${word}\n`;
    await writeFile(notes, content);
    ok(
      await cli([
        "send",
        "--json",
        "--to",
        SUPPORT,
        "-s",
        subject,
        "--text",
        `please look ${word}`,
        "-a",
        notes,
      ]),
    );

    // search: by a word of the body, and by subject and sender together
    const [found] = await searchUntil(["--via", via, word], 1);
    expect(found?.subject).toBe(subject);
    const bySubject = ok(
      await cli(["search", "--json", "--via", via, "--subject", subject, "--from", "support"]),
    );
    expect(bySubject.messages.map((m: Listed) => m.id)).toEqual([found!.id]);
    const id = found!.id;
    const original = ok(await cli(["read", id, "--json", "--via", via])).message;

    // reply: threads (In-Reply-To / References) and quotes the original below the new text
    const replied = ok(await cli(["reply", id, "--json", "--via", via], `my answer ${word}\n`));
    expect(replied).toMatchObject({ ok: true, accepted: [SUPPORT] });
    const [answer] = await searchUntil(["--via", via, "--subject", `${re} ${subject}`], 1);
    expect(answer!.subject).toBe(`${re} ${subject}`);
    const source = await cli(["read", answer!.id, "--source", "--via", via]);
    expect(source.stdout).toContain(`In-Reply-To: ${original.internetMessageId}`);
    expect(source.stdout).toMatch(/References: .*</);
    const answerText: string = ok(await cli(["read", answer!.id, "--json", "--via", via])).message.text;
    expect(answerText.indexOf("my answer")).toBeGreaterThanOrEqual(0);
    expect(answerText.indexOf("please look")).toBeGreaterThan(answerText.indexOf("my answer"));

    // forward: the attachment goes along
    const forwarded = ok(
      await cli(["forward", id, "--json", "--via", via, "--to", SUPPORT, "--text", "fyi"]),
    );
    expect(forwarded.accepted).toEqual([SUPPORT]);
    const [fwd] = await searchUntil(["--via", via, "--subject", `${fw} ${subject}`], 1);
    const fwdMessage = ok(await cli(["read", fwd!.id, "--json", "--via", via])).message;
    expect(fwdMessage.attachments.map((a: { filename: string }) => a.filename)).toEqual([`notes-${via}.txt`]);

    // mark read + flagged, and back
    ok(await cli(["mark", id, "--read", "--flag", "--json", "--via", via]));
    expect((await listed(via, "inbox", subject)).find((m) => m.id === id)).toMatchObject({
      isRead: true,
      isFlagged: true,
    });
    ok(await cli(["mark", id, "--unread", "--unflag", "--json", "--via", via]));
    expect((await listed(via, "inbox", subject)).find((m) => m.id === id)).toMatchObject({
      isRead: false,
      isFlagged: false,
    });

    // download: streamed to a file, byte for byte
    const dir = join(emu.home, `dl-${via}`);
    const downloaded = ok(await cli(["download", id, "--json", "--via", via, "-o", dir]));
    expect(downloaded.attachments).toEqual([
      expect.objectContaining({ filename: `notes-${via}.txt`, savedTo: join(dir, `notes-${via}.txt`) }),
    ]);
    expect(await readFile(join(dir, `notes-${via}.txt`), "utf8")).toBe(content);

    // move to Archive (new id), then delete: to Deleted Items
    const moved = ok(await cli(["move", id, "archive", "--json", "--via", via]));
    expect(moved.newId).not.toBe(id);
    expect((await listed(via, "archive", subject)).map((m) => m.id)).toEqual([moved.newId]);
    expect((await listed(via, "inbox", subject)).map((m) => m.id)).not.toContain(id);
    ok(await cli(["delete", moved.newId, "--json", "--via", via]));
    expect(await listed(via, "archive", subject)).toHaveLength(0);
    expect((await listed(via, "trash", subject)).map((m) => m.subject)).toEqual([subject]);
    // About 30 runs of the command, each signing in afresh: give a loaded machine time.
  }, 300_000);
});

describe("drafts, shared mailboxes and ids of the wrong protocol", () => {
  it("draft create, update and send over Graph", async () => {
    const subject = `draft ${tag()}`;
    const created = ok(await cli(["draft", "create", "--json", "-s", subject, "--text", "first"]));
    expect(created.id).toBeTruthy();
    expect(await listed("graph", "drafts", subject)).toHaveLength(1);
    const updated = ok(
      await cli(["draft", "update", created.id, "--json", "--to", SUPPORT, "--text", "second"]),
    );
    const sent = ok(await cli(["draft", "send", updated.id, "--json"]));
    expect(sent.accepted).toEqual([SUPPORT]);
    const [arrived] = await searchUntil(["--subject", subject], 1);
    expect(ok(await cli(["read", arrived!.id, "--json"])).message.text.trim()).toBe("second");
    expect(await listed("graph", "drafts", subject)).toHaveLength(0);
  });

  it("--mailbox works on a shared mailbox the user is a delegate of", async () => {
    const subject = `shared ${tag()}`;
    ok(await cli(["send", "--json", "--to", "shared@contoso.com", "-s", subject, "--text", "for the team"]));
    const [found] = await searchUntil(["--mailbox", "shared@contoso.com", "--subject", subject], 1);
    expect(found?.subject).toBe(subject);
    // The signed-in user's own mailbox does not have it.
    expect(ok(await cli(["search", "--json", "--subject", subject])).messages).toEqual([]);
  });

  it("an IMAP id without --via imap is a usage error that says to add it", async () => {
    for (const command of [
      ["read", "INBOX:1700000000:42"],
      ["reply", "INBOX:1700000000:42", "--text", "x"],
      ["mark", "INBOX:1700000000:42", "--read"],
      ["move", "INBOX:1700000000:42", "archive"],
      ["delete", "INBOX:1700000000:42"],
      ["download", "INBOX:1700000000:42"],
    ]) {
      const result = await cli([...command, "--json"]);
      expect(result.code, command.join(" ")).toBe(2);
      expect(parseJson(result).error.hint).toContain("--via imap");
    }
  });
});
