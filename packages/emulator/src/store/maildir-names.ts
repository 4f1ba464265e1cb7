/**
 * How Exchange folder paths and message ids map onto Dovecot's Maildir++ layout. Dovecot reads the same
 * folders (dovecot.conf: `maildir:...:UTF-8` with the `listescape` plugin and "/" as IMAP separator), so
 * every rule here mirrors what Dovecot itself writes — checked against Dovecot 2.3.19 on Debian 12:
 *   "Inbox/Receipts" → `.INBOX.Receipts`, "Sent Items" → `.Sent Items`, "Foo.Bar" → `.Foo\2eBar`,
 *   "~x" → `.\7ex`, "a\b" → `.a\5cb`; message files `cur/<unique>,S=<size>:2,<flags>`.
 */
import { hostname } from "node:os";
import { M365MailError, type SpecialFolder } from "@m365-mail/core";

export const STORE_SOURCE = "emulator-store";

export interface WellKnownFolder {
  /** Exchange's display path, also the IMAP name (except INBOX). */
  path: string;
  specialUse: SpecialFolder;
  /** Graph's well-known folder name (`/me/mailFolders/sentitems`). */
  wellKnownName: string;
  /** RFC 6154 attribute Dovecot announces; undefined for INBOX. */
  imapSpecialUse?: string;
}

/** The folders every Exchange Online mailbox has, in Exchange's own names. */
export const WELL_KNOWN_FOLDERS: readonly WellKnownFolder[] = [
  { path: "Inbox", specialUse: "inbox", wellKnownName: "inbox" },
  { path: "Sent Items", specialUse: "sent", wellKnownName: "sentitems", imapSpecialUse: "\\Sent" },
  { path: "Drafts", specialUse: "drafts", wellKnownName: "drafts", imapSpecialUse: "\\Drafts" },
  { path: "Deleted Items", specialUse: "trash", wellKnownName: "deleteditems", imapSpecialUse: "\\Trash" },
  { path: "Junk Email", specialUse: "junk", wellKnownName: "junkemail", imapSpecialUse: "\\Junk" },
  { path: "Archive", specialUse: "archive", wellKnownName: "archive", imapSpecialUse: "\\Archive" },
];

export const INBOX_PATH = "Inbox";

function invalidFolder(path: string, why: string): M365MailError {
  return new M365MailError("CONFIG_INVALID", `invalid folder path "${path}": ${why}`, {
    source: STORE_SOURCE,
    serverCode: "ErrorInvalidFolderName",
    hint: 'Use "/" between folder names, e.g. "Inbox/Receipts"; names cannot be empty.',
  });
}

/**
 * Canonical display path: "/" separated, "Inbox" spelled as Exchange does, well-known top-level
 * folders matched without regard to case (Exchange folder names are case-insensitive).
 */
export function normalizeFolderPath(path: string): string {
  const trimmed = path.trim().replace(/^\/+|\/+$/g, "");
  if (trimmed === "") throw invalidFolder(path, "empty");
  const segments = trimmed.split("/");
  for (const segment of segments) {
    if (segment.trim() === "") throw invalidFolder(path, "empty folder name");
    if (/[\0\r\n\t]/.test(segment)) throw invalidFolder(path, "control characters");
  }
  const first = segments[0]!;
  const known = WELL_KNOWN_FOLDERS.find((f) => f.path.toLowerCase() === first.toLowerCase());
  if (known) segments[0] = known.path;
  return segments.join("/");
}

export function wellKnownFolder(path: string): WellKnownFolder | undefined {
  return WELL_KNOWN_FOLDERS.find((f) => f.path === path);
}

// Dovecot's listescape plugin: "\" + two hex digits for the escape char itself, the Maildir++ separator
// ".", "/" and a "~" at the start of a name (Dovecot would read it as a home directory).
function escapeSegment(segment: string): string {
  let out = "";
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === "\\" || ch === "." || ch === "/" || (ch === "~" && i === 0)) {
      out += "\\" + ch.charCodeAt(0).toString(16).padStart(2, "0");
    } else out += ch;
  }
  return out;
}

function unescapeSegment(segment: string): string {
  return segment.replace(/\\([0-9a-fA-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** Maildir++ directory name of a folder below the Maildir root; "" for the Inbox (the root itself). */
export function folderDirName(path: string): string {
  const segments = normalizeFolderPath(path).split("/");
  if (segments.length === 1 && segments[0] === INBOX_PATH) return "";
  if (segments[0] === INBOX_PATH) segments[0] = "INBOX";
  return "." + segments.map(escapeSegment).join(".");
}

/** The folder path of a Maildir++ directory name, or undefined when the entry is not a folder. */
export function folderPathOfDir(name: string): string | undefined {
  if (!name.startsWith(".") || name === "." || name === "..") return undefined;
  const segments = name.slice(1).split(".").map(unescapeSegment);
  if (segments.some((s) => s === "")) return undefined;
  if (segments[0] === "INBOX") segments[0] = INBOX_PATH;
  return segments.join("/");
}

/** The line Dovecot's subscriptions file (format "V\t2") holds for a folder: tab between levels. */
export function subscriptionLine(path: string): string {
  const segments = normalizeFolderPath(path).split("/");
  if (segments[0] === INBOX_PATH) segments[0] = "INBOX";
  return segments.map(escapeSegment).join("\t");
}

export function folderIdOf(path: string): string {
  return Buffer.from(path, "utf8").toString("base64url");
}

/** Decodes a folder id; undefined when the text is not one of ours. */
export function folderPathOfId(id: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(id)) return undefined;
  const path = Buffer.from(id, "base64url").toString("utf8");
  if (folderIdOf(path) !== id) return undefined;
  try {
    return normalizeFolderPath(path) === path ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Message id: base64url of "<folder path>\n<id key>". The id key is the file name up to the first ","
 * or ":" (or its `,I=` field, below), so it survives Dovecot's renames for flag changes (`...:2,S`). A rewritten message (a Graph
 * draft PATCH) gets a fresh file name — Dovecot keys IMAP UIDs and its cache on the name before ":2,",
 * so changed content must never sit under an old name — and keeps its id through an `,I=<key>` field,
 * which Dovecot ignores. The folder is part of the id because IMAP COPY hard-links a file into another
 * folder under the same name.
 */
export function messageIdOf(folderPath: string, idKey: string): string {
  return Buffer.from(`${folderPath}\n${idKey}`, "utf8").toString("base64url");
}

export function parseMessageId(id: string): { folderPath: string; idKey: string } | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(id)) return undefined;
  const text = Buffer.from(id, "base64url").toString("utf8");
  const cut = text.lastIndexOf("\n");
  if (cut <= 0) return undefined;
  const folderPath = text.slice(0, cut);
  const idKey = text.slice(cut + 1);
  if (!isUniquePart(idKey) || messageIdOf(folderPath, idKey) !== id) return undefined;
  return { folderPath, idKey };
}

function isUniquePart(unique: string): boolean {
  return unique.length > 0 && !/[/:,\0]/.test(unique) && unique !== "." && unique !== "..";
}

export interface MaildirFileName {
  /** Up to the first "," or ":" — Dovecot's base name. */
  unique: string;
  /** What the message id is made of: the `,I=` field when present, else `unique`. */
  idKey: string;
  /** Up to ":2," — what Dovecot's uidlist keys on. */
  base: string;
  /** Flag letters after ":2," (uppercase system flags, lowercase keywords). */
  flags: string;
  /** From ",S=<n>" when present. */
  size: number | undefined;
}

export function parseMaildirFileName(name: string): MaildirFileName | undefined {
  if (name.startsWith(".")) return undefined;
  const colon = name.indexOf(":");
  const base = colon === -1 ? name : name.slice(0, colon);
  const info = colon === -1 ? "" : name.slice(colon + 1);
  const flags = info.startsWith("2,") ? info.slice(2) : "";
  const unique = base.split(",")[0]!;
  if (!isUniquePart(unique)) return undefined;
  const sizeMatch = /,S=(\d+)/.exec(base);
  const keyMatch = /,I=([^,]+)/.exec(base);
  const idKey = keyMatch && isUniquePart(keyMatch[1]!) ? keyMatch[1]! : unique;
  return { unique, idKey, base, flags, size: sizeMatch ? Number(sizeMatch[1]) : undefined };
}

/** Maildir wants flag letters in ASCII order, each once. */
export function sortFlags(flags: string): string {
  return [...new Set(flags)].sort().join("");
}

export function withFlag(flags: string, letter: string, on: boolean): string {
  const without = flags.split(letter).join("");
  return sortFlags(on ? without + letter : without);
}

let counter = 0;
// Maildir host part: "/" and ":" would break the name (the Maildir spec writes them as \057 and \072).
const HOST = hostname().replace(/\//g, "\\057").replace(/:/g, "\\072").replace(/,/g, "\\054") || "localhost";

/** A fresh Maildir unique name in Dovecot's own style: `<sec>.M<usec>P<pid>Q<n>R<random>.<host>`. */
export function newUniqueName(now: Date = new Date()): string {
  const ms = now.getTime();
  const sec = Math.floor(ms / 1000);
  const usec = (ms % 1000) * 1000 + Math.floor(Math.random() * 1000);
  counter = (counter + 1) % 1_000_000;
  const random = Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, "0");
  return `${sec}.M${usec}P${process.pid}Q${counter}R${random}.${HOST}`;
}
