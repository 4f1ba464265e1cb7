import type { AddressObject, Attachment, ParsedMail } from "mailparser";
import type { MessageRecord } from "./mailbox-view.js";
import { shortHash } from "./mime.js";

/** Every property of Graph's message resource we serve (lower-cased, for `$select` checks). */
export const MESSAGE_PROPERTIES = new Set(
  [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
    "attachments",
  ].map((name) => name.toLowerCase()),
);

export const ATTACHMENT_PROPERTIES = new Set(
  [
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
  ].map((name) => name.toLowerCase()),
);

type Recipient = { emailAddress: { name: string; address: string } };

function recipients(value: AddressObject | AddressObject[] | undefined): Recipient[] {
  const groups = Array.isArray(value) ? value : value ? [value] : [];
  return groups
    .flatMap((group) => group.value)
    .filter((entry) => entry.address)
    .map((entry) => ({ emailAddress: { name: entry.name || entry.address!, address: entry.address! } }));
}

/** Graph writes instants as "2025-01-01T10:00:00Z" (seconds, UTC). */
export function graphInstant(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>|<\/p>|<\/div>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** `Prefer: outlook.body-content-type="text"|"html"`; Outlook's default is HTML when the message has it. */
export function preferredBodyType(prefer: string | undefined): "text" | "html" | undefined {
  const match = /outlook\.body-content-type\s*=\s*"?(text|html)"?/i.exec(prefer ?? "");
  return match ? (match[1]!.toLowerCase() as "text" | "html") : undefined;
}

export function messageBody(
  parsed: ParsedMail,
  prefer: "text" | "html" | undefined,
): { contentType: string; content: string } {
  const html = typeof parsed.html === "string" ? parsed.html.replace(/\r?\n$/, "") : undefined;
  // mailparser ends a text part with the line break that closed it in MIME; Graph returns what was sent.
  const text = (parsed.text ?? "").replace(/\r?\n$/, "");
  if (prefer === "text")
    return { contentType: "text", content: html && !parsed.text ? htmlToText(html) : text };
  if (prefer === "html" && !html) {
    return { contentType: "html", content: `<html><body><pre>${escapeHtml(text)}</pre></body></html>` };
  }
  return html ? { contentType: "html", content: html } : { contentType: "text", content: text };
}

function previewOf(parsed: ParsedMail): string {
  const text = parsed.text ?? (typeof parsed.html === "string" ? htmlToText(parsed.html) : "");
  return text.replace(/\s+/g, " ").trim().slice(0, 255);
}

function headerText(parsed: ParsedMail, name: string): string | undefined {
  const line = parsed.headerLines.find((header) => header.key === name.toLowerCase());
  return line ? line.line.slice(line.line.indexOf(":") + 1).trim() : undefined;
}

/** Exchange groups a thread by its root message; we hash the first References entry (or the Message-ID). */
function conversationIdOf(parsed: ParsedMail): string {
  const references = Array.isArray(parsed.references)
    ? parsed.references
    : parsed.references
      ? [parsed.references]
      : [];
  const root = references[0] ?? parsed.inReplyTo ?? parsed.messageId ?? parsed.subject ?? "";
  return `AAQkAGI${Buffer.from(shortHash("conversation", root)).toString("base64url")}=`;
}

export function attachmentId(messageId: string, index: number): string {
  return `AAMkAGA${Buffer.from(`${messageId}\0${index}`).toString("base64url")}=`;
}

/** The index inside the message, or undefined when the id is not one of this message's attachments. */
export function attachmentIndex(messageId: string, id: string): number | undefined {
  if (!id.startsWith("AAMkAGA")) return undefined;
  const decoded = Buffer.from(id.slice(7).replace(/=+$/, ""), "base64url").toString();
  const [owner, index] = decoded.split("\0");
  return owner === messageId && index !== undefined && /^\d+$/.test(index) ? Number(index) : undefined;
}

export function attachmentResource(
  messageId: string,
  attachment: Attachment,
  index: number,
  modifiedAt: Date,
  withContent: boolean,
): Record<string, unknown> {
  const contentType = attachment.contentType || "application/octet-stream";
  return {
    "@odata.type": "#microsoft.graph.fileAttachment",
    "@odata.mediaContentType": contentType,
    id: attachmentId(messageId, index),
    lastModifiedDateTime: graphInstant(modifiedAt),
    name: attachment.filename ?? `attachment${index + 1}`,
    contentType,
    size: attachment.size ?? attachment.content.length,
    isInline: attachment.contentDisposition === "inline",
    contentId: attachment.contentId ? attachment.contentId.replace(/^<|>$/g, "") : null,
    contentLocation: null,
    ...(withContent ? { contentBytes: attachment.content.toString("base64") } : {}),
  };
}

/** Graph's message resource for one stored message. */
export async function messageResource(
  record: MessageRecord,
  options: { preferBody?: "text" | "html"; expandAttachments?: boolean; withHeaders?: boolean } = {},
): Promise<Record<string, unknown>> {
  const parsed = await record.parsed();
  const from = recipients(parsed.from);
  const sender = headerText(parsed, "sender")
    ? recipients(parsed.headers.get("sender") as AddressObject)
    : from;
  const importanceHeader = (
    headerText(parsed, "importance") ??
    headerText(parsed, "x-priority") ??
    ""
  ).toLowerCase();
  const importance = /high|^1|^2/.test(importanceHeader)
    ? "high"
    : /low|^4|^5/.test(importanceHeader)
      ? "low"
      : "normal";
  const fileAttachments = parsed.attachments;
  const resource: Record<string, unknown> = {
    "@odata.etag": `W/"${record.version}"`,
    id: record.id,
    createdDateTime: graphInstant(record.receivedAt),
    lastModifiedDateTime: graphInstant(record.modifiedAt),
    changeKey: record.version,
    categories: [],
    receivedDateTime: graphInstant(record.receivedAt),
    sentDateTime: graphInstant(parsed.date ?? record.receivedAt),
    hasAttachments: fileAttachments.some((attachment) => attachment.contentDisposition !== "inline"),
    internetMessageId: parsed.messageId ?? null,
    subject: parsed.subject ?? "",
    bodyPreview: previewOf(parsed),
    importance,
    parentFolderId: record.folderId,
    conversationId: conversationIdOf(parsed),
    conversationIndex: Buffer.from(shortHash("index", parsed.messageId ?? record.id)).toString("base64"),
    isDeliveryReceiptRequested: false,
    isReadReceiptRequested: headerText(parsed, "disposition-notification-to") !== undefined,
    isRead: record.isRead,
    isDraft: record.isDraft,
    webLink: `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(record.id)}&exvsurl=1&viewmodel=ReadMessageItem`,
    inferenceClassification: "focused",
    body: messageBody(parsed, options.preferBody),
    sender: sender[0] ?? null,
    from: from[0] ?? null,
    toRecipients: recipients(parsed.to),
    ccRecipients: recipients(parsed.cc),
    bccRecipients: recipients(parsed.bcc),
    replyTo: recipients(parsed.replyTo),
    flag: { flagStatus: record.isFlagged ? "flagged" : "notFlagged" },
  };
  if (options.withHeaders) {
    resource.internetMessageHeaders = parsed.headerLines.map((header) => ({
      name: header.line.slice(0, header.line.indexOf(":")),
      value: header.line.slice(header.line.indexOf(":") + 1).trim(),
    }));
  }
  if (options.expandAttachments) {
    resource.attachments = fileAttachments.map((attachment, index) =>
      attachmentResource(record.id, attachment, index, record.modifiedAt, true),
    );
  }
  return resource;
}
