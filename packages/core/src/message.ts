/** An e-mail address with an optional display name. */
export interface Address {
  address: string;
  name?: string;
}

/** `"a@b.c"`, `"Name <a@b.c>"` or `{ address, name }`. */
export type AddressInput = string | Address;

export interface OutgoingAttachment {
  filename: string;
  /** Bytes, or a string taken as UTF-8 text. */
  content: Uint8Array | string;
  contentType?: string;
  /** Set for inline images referenced as `cid:` in the HTML body. */
  contentId?: string;
  inline?: boolean;
}

export interface OutgoingMessage {
  /** Defaults to the signed-in user (or the shared mailbox the transport was created for). */
  from?: AddressInput;
  to?: AddressInput | AddressInput[];
  cc?: AddressInput | AddressInput[];
  bcc?: AddressInput | AddressInput[];
  replyTo?: AddressInput | AddressInput[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: OutgoingAttachment[];
  /** Extra headers. CR and LF are refused (header injection). */
  headers?: Record<string, string>;
  /** `<id@host>`; generated when absent so that a retried send can be found again. */
  messageId?: string;
  /** A complete RFC 5322 message; when set, the fields above are ignored. */
  raw?: Uint8Array | string;
}

export interface SendResult {
  readonly transport: string;
  /** The RFC 5322 Message-ID of what was sent. */
  readonly messageId: string;
  readonly accepted: readonly string[];
  readonly rejected: readonly string[];
}

export type SpecialFolder = "inbox" | "sent" | "drafts" | "trash" | "junk" | "archive" | "outbox";

export interface MailFolder {
  readonly id: string;
  readonly name: string;
  /** Full path with "/" separators, e.g. "Inbox/Receipts". */
  readonly path: string;
  readonly parentId?: string;
  readonly specialUse?: SpecialFolder;
  readonly totalCount?: number;
  readonly unreadCount?: number;
}

export interface MessageQuery {
  /** A folder id, path, or well-known name ("inbox", "sent"). Default "inbox". */
  folder?: string;
  /** Only messages received at or after this time. */
  since?: Date;
  unreadOnly?: boolean;
  /** Stop after this many messages. */
  limit?: number;
  /** Messages fetched per round trip. */
  pageSize?: number;
  /** Only messages matching all of these (Graph `$search`, IMAP `SEARCH`). */
  search?: MessageSearch;
}

/**
 * One search shape for every transport. Each field narrows the result (AND), and so does each word of a
 * field: `{ text: "march invoice" }` finds messages with both words, in any order — never a phrase
 * (quotes are not phrase marks). Matching is case-insensitive; Graph (KQL `$search`, newest first)
 * matches words and word starts, IMAP (`SEARCH`, one key per word) any part of a word.
 */
export interface MessageSearch {
  /** Words anywhere: subject, body, sender or recipients (every word, in any order). */
  text?: string;
  /** Part of the sender's address or name. */
  from?: string;
  /** Part of a To or Cc address or name. */
  to?: string;
  /** Words in the subject (every word, in any order). */
  subject?: string;
}

export interface MessageSummary {
  /** Transport-specific id (Graph id, IMAP `folder:uid`, POP3 UIDL). */
  readonly id: string;
  readonly folder?: string;
  readonly internetMessageId?: string;
  readonly subject: string;
  readonly from?: Address;
  readonly to: readonly Address[];
  readonly cc: readonly Address[];
  readonly receivedAt?: Date;
  readonly size?: number;
  readonly isRead?: boolean;
  /** Flagged for follow-up (Graph `flag.flagStatus`, IMAP `\\Flagged`). */
  readonly isFlagged?: boolean;
  readonly hasAttachments?: boolean;
}

export interface ReceivedAttachment {
  readonly filename: string;
  readonly contentType: string;
  readonly size: number;
  readonly content: Uint8Array;
  readonly contentId?: string;
  readonly inline?: boolean;
}

/** An attachment as listed, before its bytes are read (`transport.listAttachments`). */
export interface AttachmentInfo {
  /** Transport-specific: a Graph attachment id, an IMAP body part ("2", "1.2"). */
  readonly id: string;
  readonly filename: string;
  readonly contentType: string;
  /** Bytes, when the server says (Graph: exact; IMAP: estimated from the encoded part's size). */
  readonly size?: number;
  readonly inline?: boolean;
}

/** An attachment being read: its bytes arrive as chunks and are never all held in memory. */
export interface AttachmentDownload extends AttachmentInfo {
  readonly content: AsyncIterable<Uint8Array>;
}

/** A saved draft: its id (changes when an IMAP draft is replaced) and its Message-ID. */
export interface DraftRef {
  readonly id: string;
  readonly messageId?: string;
}

export interface Message extends MessageSummary {
  readonly text?: string;
  readonly html?: string;
  readonly attachments: readonly ReceivedAttachment[];
  readonly headers?: Readonly<Record<string, string>>;
  /** The RFC 5322 source, when the transport fetched it. */
  readonly raw?: Uint8Array;
}

export type MailEvent =
  | { readonly type: "created"; readonly message: MessageSummary }
  | { readonly type: "updated"; readonly message: MessageSummary }
  | { readonly type: "deleted"; readonly id: string };

export interface DateRange {
  start: Date;
  end: Date;
}

export interface CalendarEvent {
  readonly id: string;
  readonly subject: string;
  readonly start: Date;
  readonly end: Date;
  readonly isAllDay: boolean;
  readonly location?: string;
  readonly organizer?: Address;
  readonly attendees: readonly Address[];
  readonly bodyPreview?: string;
}
