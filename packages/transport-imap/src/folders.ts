import type { MailFolder, SpecialFolder } from "@m365-mail/core";
import type { ListResponse } from "imapflow";

const SPECIAL_USE: Readonly<Record<string, SpecialFolder>> = {
  "\\Inbox": "inbox",
  "\\Sent": "sent",
  "\\Drafts": "drafts",
  "\\Trash": "trash",
  "\\Junk": "junk",
  "\\Archive": "archive",
};

// Exchange Online's English folder names, for servers that send no SPECIAL-USE flags. imapflow already
// guesses from localized names; this table only catches what it does not ("Outbox" has no RFC 6154 flag).
const EXCHANGE_NAMES: Readonly<Record<string, SpecialFolder>> = {
  inbox: "inbox",
  "sent items": "sent",
  drafts: "drafts",
  "deleted items": "trash",
  "junk email": "junk",
  archive: "archive",
  outbox: "outbox",
};

/** The well-known names accepted wherever a folder is expected ("inbox", "sent", "trash", ...). */
export const SPECIAL_FOLDER_NAMES: readonly SpecialFolder[] = [
  "inbox",
  "sent",
  "drafts",
  "trash",
  "junk",
  "archive",
  "outbox",
];

export function specialUseOf(
  entry: Pick<ListResponse, "path" | "name" | "specialUse" | "parentPath">,
): SpecialFolder | undefined {
  if (entry.specialUse && SPECIAL_USE[entry.specialUse]) return SPECIAL_USE[entry.specialUse];
  if (entry.path.toUpperCase() === "INBOX") return "inbox";
  // Only top-level folders are Exchange's well-known folders; "Projects/Archive" is a user folder.
  if (entry.parentPath) return undefined;
  return EXCHANGE_NAMES[entry.name.toLowerCase()];
}

/** An IMAP LIST entry as a MailFolder: id is the server path, `path` uses "/" like Graph's folder paths. */
export function toMailFolder(entry: ListResponse): MailFolder {
  const specialUse = specialUseOf(entry);
  const path = [...entry.parent, entry.name].join("/");
  return {
    id: entry.path,
    name: entry.name,
    path,
    ...(entry.parentPath ? { parentId: entry.parentPath } : {}),
    ...(specialUse ? { specialUse } : {}),
    ...(entry.status?.messages !== undefined ? { totalCount: entry.status.messages } : {}),
    ...(entry.status?.unseen !== undefined ? { unreadCount: entry.status.unseen } : {}),
  };
}

/**
 * Finds the folder a caller meant: a server path ("INBOX", "Sent Items"), a "/"-separated path
 * ("Inbox/Receipts"), or a well-known name ("sent"). Case-insensitive like Exchange.
 */
export function findFolder(folders: readonly MailFolder[], wanted: string): MailFolder | undefined {
  const lower = wanted.toLowerCase();
  const exact = folders.find((f) => f.id === wanted) ?? folders.find((f) => f.path === wanted);
  if (exact) return exact;
  if ((SPECIAL_FOLDER_NAMES as readonly string[]).includes(lower)) {
    const special = folders.find((f) => f.specialUse === lower);
    if (special) return special;
  }
  return folders.find((f) => f.id.toLowerCase() === lower || f.path.toLowerCase() === lower);
}
