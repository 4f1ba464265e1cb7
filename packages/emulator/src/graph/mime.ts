import { createHash } from "node:crypto";
import { generateMessageId } from "@m365-mail/core";
import { type AddressObject, type ParsedMail, simpleParser } from "mailparser";
import MailComposer from "nodemailer/lib/mail-composer";
import { GraphError, invalidRequest } from "./graph-error.js";

/** `{ emailAddress: { name, address } }`, Graph's recipient. */
export interface GraphRecipient {
  emailAddress: { name?: string; address?: string };
}

export interface GraphFileAttachmentInput {
  "@odata.type"?: string;
  name?: string;
  contentType?: string;
  contentBytes?: string;
  isInline?: boolean;
  contentId?: string;
}

/** The writable part of Graph's message resource that sendMail and create-draft accept. */
export interface GraphMessageInput {
  subject?: string;
  body?: { contentType?: string; content?: string };
  from?: GraphRecipient;
  sender?: GraphRecipient;
  toRecipients?: GraphRecipient[];
  ccRecipients?: GraphRecipient[];
  bccRecipients?: GraphRecipient[];
  replyTo?: GraphRecipient[];
  importance?: string;
  internetMessageId?: string;
  internetMessageHeaders?: { name?: string; value?: string }[];
  attachments?: GraphFileAttachmentInput[];
  isDeliveryReceiptRequested?: boolean;
  isReadReceiptRequested?: boolean;
}

export interface ComposeOptions {
  /** The mailbox the message is sent from (or saved in). */
  mailbox: { address: string; name?: string };
  /** Keep the Bcc header: true for the sender's copies (Sent Items, Drafts), false for delivery. */
  keepBcc: boolean;
  messageId?: string;
  date?: Date;
}

function toAddress(recipient: GraphRecipient | undefined): { name: string; address: string } {
  const address = recipient?.emailAddress?.address?.trim();
  if (!address || !/^[^\s@]+@[^\s@]+$/.test(address)) {
    throw new GraphError(
      400,
      "ErrorInvalidRecipients",
      `At least one recipient isn't valid., Recipient '${address ?? ""}' isn't resolved. All recipients must be resolved before a message can be submitted.`,
    );
  }
  return { name: recipient?.emailAddress?.name ?? "", address };
}

function toAddressList(
  recipients: GraphRecipient[] | undefined,
  field: string,
): { name: string; address: string }[] {
  if (recipients === undefined || recipients === null) return [];
  if (!Array.isArray(recipients)) throw invalidRequest(`Property '${field}' must be a collection.`);
  return recipients.map((recipient) => toAddress(recipient));
}

export function recipientsOf(message: GraphMessageInput): string[] {
  return [
    ...toAddressList(message.toRecipients, "toRecipients"),
    ...toAddressList(message.ccRecipients, "ccRecipients"),
    ...toAddressList(message.bccRecipients, "bccRecipients"),
  ].map((recipient) => recipient.address);
}

/**
 * Custom headers must be named `x-…`, and at most five (Graph refuses others; the texts are Graph's,
 * https://learn.microsoft.com/en-us/answers/questions/762243 for the count).
 */
function customHeaders(headers: GraphMessageInput["internetMessageHeaders"]): Record<string, string> {
  const out: Record<string, string> = {};
  if ((headers?.length ?? 0) > 5) {
    throw new GraphError(
      400,
      "InvalidInternetMessageHeaderCollection",
      "Maximum number of headers in one message should be less than or equal to 5.",
    );
  }
  for (const header of headers ?? []) {
    const name = header.name ?? "";
    if (!/^x-[!-9;-~]+$/i.test(name)) {
      throw new GraphError(
        400,
        "InvalidInternetMessageHeader",
        `The internet message header name '${name}' should start with 'x-' or 'X-'.`,
      );
    }
    if (/[\r\n]/.test(header.value ?? "")) throw invalidRequest(`The value of header '${name}' is invalid.`);
    out[name] = header.value ?? "";
  }
  return out;
}

/** Builds RFC 5322 bytes from Graph JSON with nodemailer's MailComposer. */
export async function composeMime(message: GraphMessageInput, options: ComposeOptions): Promise<Buffer> {
  if (message === null || typeof message !== "object")
    throw invalidRequest("Empty Payload. JSON content expected.");
  const from = message.from
    ? toAddress(message.from)
    : { name: options.mailbox.name ?? "", address: options.mailbox.address };
  const contentType = (message.body?.contentType ?? "text").toLowerCase();
  const content = message.body?.content ?? "";
  const importance = (message.importance ?? "normal").toLowerCase();
  const headers: Record<string, string> = { ...customHeaders(message.internetMessageHeaders) };
  if (importance === "high" || importance === "low")
    headers.Importance = importance === "high" ? "High" : "Low";
  if (message.isReadReceiptRequested) headers["Disposition-Notification-To"] = from.address;
  const attachments = (message.attachments ?? []).map((attachment) => fileAttachmentForComposer(attachment));
  const composer = new MailComposer({
    from,
    ...(message.from && from.address.toLowerCase() !== options.mailbox.address.toLowerCase()
      ? { sender: { name: options.mailbox.name ?? "", address: options.mailbox.address } }
      : {}),
    to: toAddressList(message.toRecipients, "toRecipients"),
    cc: toAddressList(message.ccRecipients, "ccRecipients"),
    bcc: toAddressList(message.bccRecipients, "bccRecipients"),
    replyTo: toAddressList(message.replyTo, "replyTo"),
    subject: message.subject ?? "",
    messageId: options.messageId ?? message.internetMessageId ?? generateMessageId(from.address),
    date: options.date ?? new Date(),
    ...(contentType === "html" ? { html: content } : { text: content }),
    attachments,
    headers,
    newline: "\r\n",
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const node = composer.compile();
  node.keepBcc = options.keepBcc;
  return node.build();
}

function fileAttachmentForComposer(attachment: GraphFileAttachmentInput) {
  const type = attachment["@odata.type"] ?? "#microsoft.graph.fileAttachment";
  if (type.replace(/^#/, "").toLowerCase() !== "microsoft.graph.fileattachment") {
    throw invalidRequest(
      `Attachment type '${type}' is not supported by the emulator; use #microsoft.graph.fileAttachment.`,
    );
  }
  if (!attachment.name) throw invalidRequest("The attachment name is required.");
  if (typeof attachment.contentBytes !== "string" || !isBase64(attachment.contentBytes)) {
    throw invalidRequest("The contentBytes of a file attachment must be a base64 string.");
  }
  return {
    filename: attachment.name,
    content: Buffer.from(attachment.contentBytes, "base64"),
    contentType: attachment.contentType ?? "application/octet-stream",
    ...(attachment.isInline || attachment.contentId
      ? {
          cid: attachment.contentId ?? attachment.name,
          contentDisposition: attachment.isInline ? "inline" : "attachment",
        }
      : {}),
  };
}

export function isBase64(text: string): boolean {
  const compact = text.replace(/\s+/g, "");
  return compact.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(compact);
}

/** Adds attachments to an existing message (a draft) by recomposing it; keeps Message-ID and Date. */
export async function withAttachments(
  raw: Buffer,
  added: { filename: string; content: Buffer; contentType: string; isInline?: boolean; contentId?: string }[],
): Promise<Buffer> {
  const parsed = await parseMime(raw);
  const addresses = (value: AddressObject | AddressObject[] | undefined) =>
    (Array.isArray(value) ? value : value ? [value] : [])
      .flatMap((group) => group.value)
      .map((a) => ({
        name: a.name ?? "",
        address: a.address ?? "",
      }));
  const keep: Record<string, string> = {};
  for (const [name, value] of parsed.headers) {
    if (/^(x-|importance$|disposition-notification-to$)/i.test(name) && typeof value === "string")
      keep[name] = value;
  }
  const composer = new MailComposer({
    from: addresses(parsed.from)[0],
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    bcc: addresses(parsed.bcc),
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? "",
    messageId: parsed.messageId,
    date: parsed.date ?? new Date(),
    ...(parsed.html ? { html: parsed.html } : { text: parsed.text ?? "" }),
    attachments: [
      ...parsed.attachments.map((a) => ({
        filename: a.filename ?? "attachment",
        content: a.content,
        contentType: a.contentType,
        ...(a.contentId
          ? { cid: a.contentId.replace(/^<|>$/g, ""), contentDisposition: a.contentDisposition }
          : {}),
      })),
      ...added.map((a) => ({
        filename: a.filename,
        content: a.content,
        contentType: a.contentType,
        ...(a.isInline || a.contentId
          ? { cid: a.contentId ?? a.filename, contentDisposition: a.isInline ? "inline" : "attachment" }
          : {}),
      })),
    ],
    headers: keep,
    newline: "\r\n",
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const node = composer.compile();
  node.keepBcc = true;
  return node.build();
}

/** Removes the Bcc header block from a message's header section (what recipients must not see). */
export function stripBcc(raw: Buffer): Buffer {
  const text = raw.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0) return raw;
  const head = text.slice(0, end).replace(/^Bcc:.*(?:\r?\n[ \t].*)*(?:\r?\n)?/gim, "");
  return Buffer.from(head + text.slice(end), "latin1");
}

export function parseMime(raw: Buffer): Promise<ParsedMail> {
  return simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
}

/** A short opaque hash used inside ids and etags. */
export function shortHash(...parts: (string | Buffer)[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("base64url").slice(0, 16);
}
