import { mkdtemp, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isM365MailError } from "@m365-mail/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMailStore, type MailStore } from "../src/store/index.js";
import { isRoot, lookupUser } from "../src/store/mail-owner.js";

const UPN = "support@contoso.com";
const mime = (subject: string) =>
  Buffer.from(`From: a@fabrikam.com\r\nTo: ${UPN}\r\nSubject: ${subject}\r\n\r\nHello\r\n`);

let root: string;
let store: MailStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "m365-store-"));
  store = createMailStore({ root });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("mailbox layout", () => {
  it("creates Exchange's folders in Dovecot's Maildir++ layout", async () => {
    await store.ensureMailbox(UPN);
    const maildir = join(root, "mail", UPN, "Maildir");
    const entries = await readdir(maildir);
    expect(entries).toEqual(
      expect.arrayContaining([
        "cur",
        "new",
        "tmp",
        ".Sent Items",
        ".Drafts",
        ".Deleted Items",
        ".Junk Email",
        ".Archive",
      ]),
    );
    expect(await readdir(join(maildir, ".Sent Items"))).toEqual(
      expect.arrayContaining(["cur", "new", "tmp", "maildirfolder"]),
    );
    const folders = await store.listFolders(UPN);
    expect(folders.map((f) => [f.path, f.specialUse])).toEqual([
      ["Inbox", "inbox"],
      ["Sent Items", "sent"],
      ["Drafts", "drafts"],
      ["Deleted Items", "trash"],
      ["Junk Email", "junk"],
      ["Archive", "archive"],
    ]);
  });

  it("keeps mail of different users apart and treats the UPN case-insensitively", async () => {
    await store.deliver("Support@Contoso.com", "inbox", mime("one"));
    await store.deliver("other@contoso.com", "inbox", mime("two"));
    expect(await store.list(UPN, "Inbox")).toHaveLength(1);
    expect(await store.list("other@contoso.com", "Inbox")).toHaveLength(1);
  });

  it("refuses a UPN that would escape the data folder", async () => {
    await expect(store.ensureMailbox("../../etc")).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });

  it.skipIf(!isRoot())(
    "writes files owned by the mail user when running as root (Dovecot refuses uid 0)",
    async () => {
      const mail = lookupUser("mail")!;
      const message = await store.deliver(UPN, "inbox", mime("owned"));
      const file = join(root, "mail", UPN, "Maildir", "new", message.filename);
      expect((await stat(file)).uid).toBe(mail.uid);
      expect((await stat(join(root, "mail", UPN, "Maildir", ".Sent Items", "cur"))).uid).toBe(mail.uid);
      expect((await stat(join(root, "mail"))).uid).toBe(mail.uid);
    },
  );
});

describe("folders", () => {
  it("maps child folders and dots the way Dovecot's listescape does", async () => {
    const receipts = await store.createFolder(UPN, "inbox/Receipts");
    const dotted = await store.createFolder(UPN, "Projects/v1.2");
    const maildir = join(root, "mail", UPN, "Maildir");
    expect(await readdir(maildir)).toEqual(
      expect.arrayContaining([".INBOX.Receipts", ".Projects", ".Projects.v1\\2e2"]),
    );
    expect(receipts).toMatchObject({
      path: "Inbox/Receipts",
      name: "Receipts",
      parentId: (await store.getFolder(UPN, "inbox")).id,
    });
    expect(dotted.path).toBe("Projects/v1.2");
    // IMAP clients list subscribed folders: Dovecot's "V\t2" subscriptions file, tab between levels.
    const subscriptions = await readFile(join(maildir, "subscriptions"), "utf8");
    expect(subscriptions.split("\n")).toEqual(
      expect.arrayContaining(["INBOX\tReceipts", "Projects", "Projects\tv1\\2e2"]),
    );
  });

  it("finds a folder by id, path in any case, or Graph well-known name", async () => {
    const sent = await store.getFolder(UPN, "sentitems");
    expect(sent.path).toBe("Sent Items");
    expect((await store.getFolder(UPN, sent.id)).path).toBe("Sent Items");
    expect((await store.getFolder(UPN, "sent items")).id).toBe(sent.id);
    expect(await store.findFolder(UPN, "Nowhere")).toBeUndefined();
    await expect(store.getFolder(UPN, "Nowhere")).rejects.toMatchObject({
      code: "NOT_FOUND",
      serverCode: "ErrorItemNotFound",
    });
  });

  it("shows folders Dovecot created without their parent (IMAP CREATE a/b) with the parent", async () => {
    await store.ensureMailbox(UPN);
    const { mkdir } = await import("node:fs/promises");
    await mkdir(join(root, "mail", UPN, "Maildir", ".Clients.Acme", "cur"), { recursive: true });
    const paths = (await store.listFolders(UPN)).map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(["Clients", "Clients/Acme"]));
    expect((await store.getFolder(UPN, "Clients")).childFolderCount).toBe(1);
  });

  it("counts total and unread messages", async () => {
    await store.deliver(UPN, "inbox", mime("a"));
    await store.deliver(UPN, "inbox", mime("b"), { seen: true });
    expect(await store.getFolder(UPN, "inbox")).toMatchObject({ totalCount: 2, unreadCount: 1 });
  });

  it("deletes a custom folder with its children but never a well-known one", async () => {
    await store.createFolder(UPN, "Old/Child");
    await store.deleteFolder(UPN, "Old");
    expect(await store.findFolder(UPN, "Old/Child")).toBeUndefined();
    await expect(store.deleteFolder(UPN, "sentitems")).rejects.toMatchObject({ code: "ACCESS_DENIED" });
  });
});

describe("messages", () => {
  it("delivers through tmp/ into new/ and reads back the exact bytes", async () => {
    const raw = mime("Bytes");
    const receivedAt = new Date("2026-01-02T03:04:05Z");
    const message = await store.deliver(UPN, "inbox", raw, { receivedAt });
    expect(message).toMatchObject({ folderPath: "Inbox", size: raw.length, seen: false, receivedAt });
    const maildir = join(root, "mail", UPN, "Maildir");
    expect(await readdir(join(maildir, "new"))).toEqual([message.filename]);
    expect(await readdir(join(maildir, "tmp"))).toEqual([]);
    // Dovecot reads the size from ",S=" instead of calling stat().
    expect(message.filename).toMatch(new RegExp(`,S=${raw.length}$`));
    const read = await store.read(UPN, message.id);
    expect(read.raw.equals(raw)).toBe(true);
    expect(read.message.id).toBe(message.id);
  });

  it("stores a seen or flagged message in cur/ with Maildir flags", async () => {
    const message = await store.deliver(UPN, "Sent Items", mime("sent"), { seen: true, flagged: true });
    expect(message.filename).toMatch(/:2,FS$/);
    expect(await readdir(join(root, "mail", UPN, "Maildir", ".Sent Items", "cur"))).toEqual([
      message.filename,
    ]);
  });

  it("lists newest first", async () => {
    await store.deliver(UPN, "inbox", mime("old"), { receivedAt: new Date("2026-01-01T00:00:00Z") });
    await store.deliver(UPN, "inbox", mime("new"), { receivedAt: new Date("2026-02-01T00:00:00Z") });
    const listed = await store.list(UPN, "inbox");
    expect(listed.map((m) => m.receivedAt.toISOString())).toEqual([
      "2026-02-01T00:00:00.000Z",
      "2026-01-01T00:00:00.000Z",
    ]);
  });

  it("keeps the id when flags change, here or by Dovecot renaming the file", async () => {
    const message = await store.deliver(UPN, "inbox", mime("flags"));
    const seen = await store.setSeen(UPN, message.id, true);
    expect(seen).toMatchObject({ id: message.id, seen: true });
    expect(seen.filename).toMatch(/:2,S$/);
    // What Dovecot does on `STORE +FLAGS (\Flagged)`: rename within cur/, keywords as lowercase letters.
    const cur = join(root, "mail", UPN, "Maildir", "cur");
    await rename(join(cur, seen.filename), join(cur, seen.filename.replace(/:2,S$/, ":2,FSa")));
    const after = await store.get(UPN, message.id);
    expect(after).toMatchObject({ id: message.id, seen: true, flagged: true, flags: "FSa" });
    const unseen = await store.setSeen(UPN, message.id, false);
    expect(unseen).toMatchObject({ id: message.id, seen: false, flagged: true, flags: "Fa" });
    expect(await store.getFolder(UPN, "inbox")).toMatchObject({ unreadCount: 1 });
  });

  it("gives a moved message a new id, and the old id still finds it", async () => {
    const message = await store.deliver(UPN, "inbox", mime("move"), { seen: true });
    const moved = await store.move(UPN, message.id, "archive");
    expect(moved.id).not.toBe(message.id);
    expect(moved).toMatchObject({ folderPath: "Archive", seen: true });
    expect(await store.list(UPN, "inbox")).toHaveLength(0);
    expect((await store.read(UPN, moved.id)).raw.toString()).toContain("Subject: move");
    expect((await store.get(UPN, message.id)).id).toBe(moved.id);
  });

  it("copies under a new id, even into a folder that holds a copy already", async () => {
    const message = await store.deliver(UPN, "inbox", mime("copy"));
    const first = await store.copy(UPN, message.id, "archive");
    const second = await store.copy(UPN, message.id, "archive");
    expect(new Set([message.id, first.id, second.id]).size).toBe(3);
    expect(await store.list(UPN, "archive")).toHaveLength(2);
    const moved = await store.move(UPN, first.id, "inbox");
    expect(await store.list(UPN, "inbox")).toHaveLength(2);
    expect(moved.id).not.toBe(message.id);
  });

  it("rewrites a draft under the same id, in a file Dovecot sees as a new message", async () => {
    const draft = await store.deliver(UPN, "drafts", mime("v1"), { draft: true });
    const raw = mime("version two");
    const updated = await store.replace(UPN, draft.id, raw);
    expect(updated).toMatchObject({ id: draft.id, draft: true, size: raw.length });
    expect(updated.changeKey).not.toBe(draft.changeKey);
    // Dovecot keys IMAP UIDs and its cache on the name before ":2,": it must differ.
    const dovecotBase = (name: string) => name.split(":")[0];
    expect(dovecotBase(updated.filename)).not.toBe(dovecotBase(draft.filename));
    expect((await store.read(UPN, draft.id)).raw.equals(raw)).toBe(true);
    expect(await store.list(UPN, "drafts")).toHaveLength(1);
    const copy = await store.copy(UPN, draft.id, "inbox");
    expect(copy.id).not.toBe(draft.id);
    const moved = await store.move(UPN, draft.id, "archive");
    expect((await store.read(UPN, moved.id)).raw.equals(raw)).toBe(true);
  });

  it("deletes a message; its id then answers NOT_FOUND", async () => {
    const message = await store.deliver(UPN, "inbox", mime("gone"));
    await store.delete(UPN, message.id);
    const error = await store.get(UPN, message.id).catch((e: unknown) => e);
    expect(isM365MailError(error, "NOT_FOUND")).toBe(true);
    await expect(store.read(UPN, "not-an-id")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("delta", () => {
  it("reports created, updated and deleted messages since a token", async () => {
    const a = await store.deliver(UPN, "inbox", mime("a"));
    const b = await store.deliver(UPN, "inbox", mime("b"));
    const first = await store.delta(UPN, "inbox");
    expect(first.created.map((m) => m.id).sort()).toEqual([a.id, b.id].sort());
    expect(first.deleted).toEqual([]);

    const same = await store.delta(UPN, "inbox", first.token);
    expect(same).toMatchObject({ created: [], updated: [], deleted: [], token: first.token });

    const c = await store.deliver(UPN, "inbox", mime("c"));
    await store.setSeen(UPN, a.id, true);
    await store.delete(UPN, b.id);
    const next = await store.delta(UPN, "inbox", first.token);
    expect(next.created.map((m) => m.id)).toEqual([c.id]);
    expect(next.updated.map((m) => [m.id, m.seen])).toEqual([[a.id, true]]);
    expect(next.deleted).toEqual([b.id]);
    expect(next.token).not.toBe(first.token);

    const moved = await store.move(UPN, c.id, "archive");
    const afterMove = await store.delta(UPN, "inbox", next.token);
    expect(afterMove.deleted).toEqual([c.id]);
    expect((await store.delta(UPN, "archive")).created.map((m) => m.id)).toEqual([moved.id]);
  });

  it("answers an unknown token like Graph's expired sync state", async () => {
    await expect(store.delta(UPN, "inbox", "zzzz-0123456789abcdef")).rejects.toMatchObject({
      code: "NOT_FOUND",
      serverCode: "SyncStateNotFound",
    });
    await expect(store.delta(UPN, "inbox", "../../etc/passwd")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("reports folder changes, counts included", async () => {
    const first = await store.folderDelta(UPN);
    expect(first.created).toHaveLength(6);
    const created = await store.createFolder(UPN, "Receipts");
    await store.deliver(UPN, "inbox", mime("x"));
    const next = await store.folderDelta(UPN, first.token);
    expect(next.created.map((f) => f.id)).toEqual([created.id]);
    expect(next.updated.map((f) => [f.path, f.unreadCount])).toEqual([["Inbox", 1]]);
  });
});
