import {
  type Address,
  type MailFolder,
  type Message,
  type MessageSummary,
  type OutgoingAttachment,
  type OutgoingMessage,
  parseAddress,
  parseAddressList,
  type ReceivedAttachment,
} from "@m365-mail/core";
import { checkGraphHeaders } from "./graph-limits.js";

/** Graph's JSON shapes, only the fields we read or write. */
export interface GraphRecipient {
  emailAddress?: { address?: string; name?: string };
}

export interface GraphFileAttachment {
  "@odata.type"?: string;
  id?: string;
  name?: string;
  contentType?: string;
  size?: number;
  isInline?: boolean;
  contentId?: string | null;
  contentBytes?: string;
}

export interface GraphMessage {
  id: string;
  subject?: string | null;
  from?: GraphRecipient | null;
  toRecipients?: GraphRecipient[];
  ccRecipients?: GraphRecipient[];
  receivedDateTime?: string;
  createdDateTime?: string;
  isRead?: boolean;
  hasAttachments?: boolean;
  internetMessageId?: string;
  parentFolderId?: string;
  body?: { contentType?: string; content?: string };
  internetMessageHeaders?: { name: string; value: string }[];
  attachments?: GraphFileAttachment[];
  "@removed"?: { reason?: string };
}

export interface GraphMailFolder {
  id: string;
  displayName?: string;
  parentFolderId?: string;
  childFolderCount?: number;
  totalItemCount?: number;
  unreadItemCount?: number;
}

/** Fields of a summary: what listMessages and delta ask Graph for. */
export const SUMMARY_FIELDS = [
  "id",
  "subject",
  "from",
  "toRecipients",
  "ccRecipients",
  "receivedDateTime",
  "createdDateTime",
  "isRead",
  "hasAttachments",
  "internetMessageId",
  "parentFolderId",
].join(",");

export const MESSAGE_FIELDS = `${SUMMARY_FIELDS},body,internetMessageHeaders`;

/** Attachments up to this size go inline in JSON; larger ones through an upload session (Graph: 3 MB). */
export const INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024;
/** A JSON sendMail body stays under this; Graph refuses requests over about 4 MB with 413. */
export const JSON_REQUEST_LIMIT = 3.5 * 1024 * 1024;

function recipient(address: Address): GraphRecipient {
  return { emailAddress: { address: address.address, ...(address.name ? { name: address.name } : {}) } };
}

export function attachmentBytes(attachment: OutgoingAttachment): Uint8Array {
  return typeof attachment.content === "string"
    ? Buffer.from(attachment.content, "utf8")
    : attachment.content;
}

export function fileAttachmentJson(attachment: OutgoingAttachment): GraphFileAttachment {
  const bytes = attachmentBytes(attachment);
  return {
    "@odata.type": "#microsoft.graph.fileAttachment",
    name: attachment.filename,
    contentType: attachment.contentType ?? "application/octet-stream",
    contentBytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
    ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
    isInline: attachment.inline ?? attachment.contentId !== undefined,
  };
}

/**
 * The JSON `message` for sendMail or a draft. Our Message-ID goes into `internetMessageId` so that a
 * send whose answer was lost can be found in Sent Items before anything is sent again.
 */
export function toGraphMessage(
  message: OutgoingMessage,
  internetMessageId: string,
  attachments: readonly OutgoingAttachment[],
): Record<string, unknown> {
  checkGraphHeaders(message.headers);
  const headers = Object.entries(message.headers ?? {});
  const out: Record<string, unknown> = {
    subject: message.subject ?? "",
    body:
      message.html !== undefined
        ? { contentType: "HTML", content: message.html }
        : { contentType: "Text", content: message.text ?? "" },
    toRecipients: parseAddressList(message.to).map(recipient),
    ccRecipients: parseAddressList(message.cc).map(recipient),
    bccRecipients: parseAddressList(message.bcc).map(recipient),
    internetMessageId,
  };
  const replyTo = parseAddressList(message.replyTo);
  if (replyTo.length > 0) out.replyTo = replyTo.map(recipient);
  if (message.from !== undefined) out.from = recipient(parseAddress(message.from));
  if (headers.length > 0) out.internetMessageHeaders = headers.map(([name, value]) => ({ name, value }));
  if (attachments.length > 0) out.attachments = attachments.map(fileAttachmentJson);
  return out;
}

export function toAddress(r: GraphRecipient | null | undefined): Address | undefined {
  const a = r?.emailAddress;
  if (!a?.address) return undefined;
  return a.name ? { address: a.address, name: a.name } : { address: a.address };
}

function addresses(list: GraphRecipient[] | undefined): Address[] {
  return (list ?? []).map(toAddress).filter((a): a is Address => a !== undefined);
}

export function toSummary(m: GraphMessage): MessageSummary {
  const from = toAddress(m.from);
  return {
    id: m.id,
    ...(m.parentFolderId ? { folder: m.parentFolderId } : {}),
    ...(m.internetMessageId ? { internetMessageId: m.internetMessageId } : {}),
    subject: m.subject ?? "",
    ...(from ? { from } : {}),
    to: addresses(m.toRecipients),
    cc: addresses(m.ccRecipients),
    ...(m.receivedDateTime ? { receivedAt: new Date(m.receivedDateTime) } : {}),
    ...(m.isRead !== undefined ? { isRead: m.isRead } : {}),
    ...(m.hasAttachments !== undefined ? { hasAttachments: m.hasAttachments } : {}),
  };
}

export function toMessage(m: GraphMessage, attachments: ReceivedAttachment[], raw?: Uint8Array): Message {
  const isHtml = m.body?.contentType?.toLowerCase() === "html";
  const headers: Record<string, string> = {};
  for (const h of m.internetMessageHeaders ?? []) {
    const key = h.name.toLowerCase();
    headers[key] = headers[key] === undefined ? h.value : `${headers[key]}, ${h.value}`;
  }
  return {
    ...toSummary(m),
    ...(m.body?.content !== undefined ? (isHtml ? { html: m.body.content } : { text: m.body.content }) : {}),
    attachments,
    ...(m.internetMessageHeaders ? { headers } : {}),
    ...(raw ? { raw } : {}),
  };
}

export function isFileAttachment(a: GraphFileAttachment): boolean {
  return !a["@odata.type"] || a["@odata.type"] === "#microsoft.graph.fileAttachment";
}

export function toReceivedAttachment(a: GraphFileAttachment, content: Uint8Array): ReceivedAttachment {
  return {
    filename: a.name ?? "attachment",
    contentType: a.contentType ?? "application/octet-stream",
    size: content.byteLength,
    content,
    ...(a.contentId ? { contentId: a.contentId } : {}),
    ...(a.isInline !== undefined ? { inline: a.isInline } : {}),
  };
}

export function toFolder(f: GraphMailFolder, path: string, specialUse: MailFolder["specialUse"]): MailFolder {
  return {
    id: f.id,
    name: f.displayName ?? "",
    path,
    ...(f.parentFolderId ? { parentId: f.parentFolderId } : {}),
    ...(specialUse ? { specialUse } : {}),
    ...(f.totalItemCount !== undefined ? { totalCount: f.totalItemCount } : {}),
    ...(f.unreadItemCount !== undefined ? { unreadCount: f.unreadItemCount } : {}),
  };
}
