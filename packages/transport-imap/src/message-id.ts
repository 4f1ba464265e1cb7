import { M365MailError } from "@m365-mail/core";

/** Where a message lives: IMAP folder path (server delimiter), UIDVALIDITY and UID. */
export interface ImapMessageRef {
  readonly folder: string;
  readonly uidValidity: bigint;
  readonly uid: number;
}

/**
 * `<folder>:<uidvalidity>:<uid>`, e.g. `INBOX:1700000000:42`. UIDVALIDITY is part of the id so that an
 * id never silently points at another message after the server renumbered the folder.
 */
export function formatMessageId(ref: ImapMessageRef): string {
  return messageIdPrefix(ref.folder, ref.uidValidity) + ref.uid;
}

/** The part of every id in one folder before the UID: `INBOX:1700000000:`. */
export function messageIdPrefix(folder: string, uidValidity: bigint): string {
  return `${folder}:${uidValidity.toString()}:`;
}

/** Parses an id made by `formatMessageId`; the folder may itself contain ":" (we split from the right). */
export function parseMessageId(id: string): ImapMessageRef {
  const match = /^(.+):(\d+):(\d+)$/.exec(id);
  const uid = match ? Number(match[3]) : 0;
  if (!match || !Number.isSafeInteger(uid) || uid < 1) {
    throw new M365MailError("CONFIG_INVALID", `"${id}" is not an IMAP message id`, {
      source: "imap",
      hint: "Pass an id returned by listMessages(), watch() or moveMessage() of the imap transport (folder:uidvalidity:uid).",
    });
  }
  return { folder: match[1]!, uidValidity: BigInt(match[2]!), uid };
}

/** A compact UID set for a command: `[5, 1, 2, 3, 9]` → `"1:3,5,9"`. */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]! <= sorted[j]! + 1) j++;
    parts.push(sorted[i] === sorted[j] ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
