import type { ListResponse } from "imapflow";
import { describe, expect, it } from "vitest";
import { findFolder, toMailFolder } from "../src/folders.js";

const entry = (path: string, extra: Partial<ListResponse> = {}): ListResponse => {
  const parts = path.split("/");
  return {
    path,
    pathAsListed: path,
    name: parts.at(-1)!,
    delimiter: "/",
    parent: parts.slice(0, -1),
    parentPath: parts.slice(0, -1).join("/"),
    flags: new Set(),
    listed: true,
    subscribed: true,
    ...extra,
  };
};

// The folders of an Exchange Online mailbox as IMAP lists them.
const exchange = [
  entry("INBOX", { specialUse: "\\Inbox" }),
  entry("Sent Items", { specialUse: "\\Sent" }),
  entry("Deleted Items", { specialUse: "\\Trash" }),
  entry("Junk Email", { specialUse: "\\Junk" }),
  entry("Drafts", { specialUse: "\\Drafts" }),
  entry("Archive"),
  entry("Outbox"),
  entry("Inbox/Receipts"),
  entry("Projects/Archive"),
].map(toMailFolder);

describe("folders", () => {
  it("maps special-use flags and Exchange's names", () => {
    const byPath = Object.fromEntries(exchange.map((f) => [f.path, f.specialUse]));
    expect(byPath).toEqual({
      INBOX: "inbox",
      "Sent Items": "sent",
      "Deleted Items": "trash",
      "Junk Email": "junk",
      Drafts: "drafts",
      Archive: "archive",
      Outbox: "outbox",
      "Inbox/Receipts": undefined,
      "Projects/Archive": undefined,
    });
  });

  it("maps names without flags too (servers without SPECIAL-USE)", () => {
    expect(toMailFolder(entry("Deleted Items")).specialUse).toBe("trash");
    expect(toMailFolder(entry("Junk Email")).specialUse).toBe("junk");
  });

  it("keeps the parent as parentId", () => {
    const receipts = exchange.find((f) => f.name === "Receipts")!;
    expect(receipts).toMatchObject({ id: "Inbox/Receipts", path: "Inbox/Receipts", parentId: "Inbox" });
  });

  it("finds a folder by well-known name, path, or case-insensitively", () => {
    expect(findFolder(exchange, "sent")?.id).toBe("Sent Items");
    expect(findFolder(exchange, "trash")?.id).toBe("Deleted Items");
    expect(findFolder(exchange, "junk email")?.id).toBe("Junk Email");
    expect(findFolder(exchange, "Inbox/Receipts")?.id).toBe("Inbox/Receipts");
    expect(findFolder(exchange, "nope")).toBeUndefined();
  });

  it("counts come from STATUS", () => {
    const folder = toMailFolder(entry("INBOX", { status: { path: "INBOX", messages: 5, unseen: 2 } }));
    expect(folder).toMatchObject({ totalCount: 5, unreadCount: 2 });
  });
});
