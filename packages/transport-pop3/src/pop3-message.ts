import type { Address, Message, MessageSummary, ReceivedAttachment } from "@m365-mail/core";
import { M365MailError } from "@m365-mail/core";
import { type AddressObject, type EmailAddress, type ParsedMail, simpleParser } from "mailparser";
import { SOURCE } from "./pop3-errors.js";

// Keep bodies exactly as sent: no text made from HTML, no HTML made from text, no cid: → data: rewrite.
const PARSE_OPTIONS = {
  skipHtmlToText: true,
  skipTextToHtml: true,
  skipImageLinks: true,
  skipTextLinks: true,
} as const;

/** POP3 reaches only the Inbox. */
export const POP3_FOLDER = "inbox";

async function parse(source: Buffer, id: string): Promise<ParsedMail> {
  try {
    return await simpleParser(source, PARSE_OPTIONS);
  } catch (error) {
    throw new M365MailError("INVALID_RESPONSE", `message ${id} could not be parsed as MIME`, {
      source: SOURCE,
      cause: error,
      retryable: false,
    });
  }
}

/** A summary from the headers of `TOP n 0` (or of the full source). */
export async function summaryFromSource(
  source: Buffer,
  id: string,
  size: number | undefined,
): Promise<MessageSummary> {
  return toSummary(await parse(source, id), id, size);
}

/** A full message from the `RETR` source; `raw` is that source, byte for byte. */
export async function messageFromSource(
  source: Buffer,
  id: string,
  size: number | undefined,
): Promise<Message> {
  const parsed = await parse(source, id);
  const attachments: ReceivedAttachment[] = parsed.attachments.map((attachment) => {
    const inline = attachment.contentDisposition === "inline" || attachment.related === true;
    return {
      filename: attachment.filename ?? "attachment",
      contentType: attachment.contentType,
      size: attachment.content.length,
      content: new Uint8Array(
        attachment.content.buffer,
        attachment.content.byteOffset,
        attachment.content.length,
      ),
      ...(attachment.cid ? { contentId: attachment.cid } : {}),
      ...(inline ? { inline: true } : {}),
    };
  });
  return {
    ...toSummary(parsed, id, size ?? source.length),
    hasAttachments: attachments.some((a) => !a.inline),
    ...(parsed.text !== undefined ? { text: parsed.text } : {}),
    ...(parsed.html !== false ? { html: parsed.html } : {}),
    attachments,
    headers: headerRecord(parsed),
    raw: new Uint8Array(source.buffer, source.byteOffset, source.length),
  };
}

function toSummary(parsed: ParsedMail, id: string, size: number | undefined): MessageSummary {
  const from = addresses(parsed.from)[0];
  const receivedAt = receivedDate(parsed) ?? parsed.date;
  return {
    id,
    folder: POP3_FOLDER,
    ...(parsed.messageId ? { internetMessageId: parsed.messageId } : {}),
    subject: parsed.subject ?? "",
    ...(from ? { from } : {}),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    ...(receivedAt && !Number.isNaN(receivedAt.getTime()) ? { receivedAt } : {}),
    ...(size !== undefined ? { size } : {}),
  };
}

/** Delivery time: the date of the topmost `Received:` header, which the receiving server added. */
function receivedDate(parsed: ParsedMail): Date | undefined {
  const value = parsed.headers.get("received");
  const first = Array.isArray(value) ? value[0] : value;
  if (typeof first !== "string") return undefined;
  const semicolon = first.lastIndexOf(";");
  if (semicolon < 0) return undefined;
  const date = new Date(first.slice(semicolon + 1).trim());
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function addresses(value: AddressObject | AddressObject[] | undefined): Address[] {
  if (!value) return [];
  const out: Address[] = [];
  const add = (entry: EmailAddress) => {
    if (entry.group) entry.group.forEach(add);
    else if (entry.address) out.push({ address: entry.address, ...(entry.name ? { name: entry.name } : {}) });
  };
  for (const object of Array.isArray(value) ? value : [value]) object.value.forEach(add);
  return out;
}

/** Header name (lower case) → unfolded value; for repeated headers (Received) the first, topmost one. */
function headerRecord(parsed: ParsedMail): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { key, line } of parsed.headerLines) {
    if (Object.hasOwn(out, key)) continue;
    const colon = line.indexOf(":");
    out[key] = line
      .slice(colon + 1)
      .replace(/\r?\n(?=[ \t])/g, "")
      .trim();
  }
  return out;
}
