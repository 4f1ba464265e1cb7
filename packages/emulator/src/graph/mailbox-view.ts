import type { ParsedMail } from "mailparser";

/** Graph's well-known folder names and what they mean in the store. */
export const WELL_KNOWN_FOLDERS = [
  "inbox",
  "sentitems",
  "drafts",
  "deleteditems",
  "junkemail",
  "archive",
] as const;
export type WellKnownFolder = (typeof WELL_KNOWN_FOLDERS)[number];

export interface FolderInfo {
  /** Opaque Graph id. */
  readonly id: string;
  readonly displayName: string;
  /** Graph id of the parent; the root ("Top of Information Store") for top-level folders. */
  readonly parentFolderId: string;
  readonly childFolderCount: number;
  readonly unreadItemCount: number;
  readonly totalItemCount: number;
  readonly isHidden: boolean;
  /** Directly below the mailbox root (what `GET /me/mailFolders` lists). */
  readonly isTopLevel: boolean;
  readonly wellKnownName?: WellKnownFolder;
}

export interface MessageRecord {
  /** Opaque Graph id; stable while the message stays in its folder. */
  readonly id: string;
  readonly folderId: string;
  readonly isRead: boolean;
  readonly isDraft: boolean;
  readonly isFlagged: boolean;
  /** When it arrived in the mailbox (Graph's receivedDateTime and createdDateTime). */
  readonly receivedAt: Date;
  /** Last change to content or flags (Graph's lastModifiedDateTime). */
  readonly modifiedAt: Date;
  /** Changes whenever anything a client sees changes (etag, changeKey, delta "updated"). */
  readonly version: string;
  readonly size: number;
  raw(): Promise<Buffer>;
  parsed(): Promise<ParsedMail>;
}

export interface AppendOptions {
  isRead?: boolean;
  isDraft?: boolean;
  receivedAt?: Date;
}

/**
 * The mailbox as Graph sees it: opaque ids, well-known folders, parsed messages. Implemented over the
 * emulator's one mailbox store (Maildir), so mail written here is the mail IMAP/POP3/SMTP see.
 */
export interface MailboxView {
  folders(upn: string): Promise<FolderInfo[]>;
  /** By Graph id or well-known name (case-insensitive). */
  folder(upn: string, idOrWellKnownName: string): Promise<FolderInfo | undefined>;
  /** Messages of one folder, or of the whole mailbox. */
  messages(upn: string, folderId?: string): Promise<MessageRecord[]>;
  message(upn: string, id: string): Promise<MessageRecord | undefined>;
  append(
    upn: string,
    folderIdOrWellKnownName: string,
    raw: Buffer,
    options?: AppendOptions,
  ): Promise<MessageRecord>;
  setRead(upn: string, id: string, isRead: boolean): Promise<MessageRecord>;
  setFlagged(upn: string, id: string, isFlagged: boolean): Promise<MessageRecord>;
  /** Returns the message in its new folder (with a new id, as Exchange gives one). */
  move(upn: string, id: string, destinationFolderId: string): Promise<MessageRecord>;
  remove(upn: string, id: string): Promise<void>;
  /** Rewrites a draft's content keeping its Graph id (attachments added to a draft). */
  replace(upn: string, id: string, raw: Buffer): Promise<MessageRecord>;
  /**
   * Changes in a folder since the state `token` names (all messages without a token). Throws
   * GraphError 410 SyncStateNotFound for an unknown or expired token.
   */
  delta(upn: string, folderId: string, token: string | undefined): Promise<MailboxDelta>;
}

export interface MailboxDelta {
  created: MessageRecord[];
  updated: MessageRecord[];
  /** Ids gone from the folder (deleted or moved out). */
  deleted: string[];
  /** State after this round, for the next `@odata.deltaLink`. */
  token: string;
}
