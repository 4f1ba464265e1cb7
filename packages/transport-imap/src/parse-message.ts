import type { Message, ReceivedAttachment } from "@m365-mail/core";
import { simpleParser } from "mailparser";
import type { ImapMessageSummary } from "./summary.js";

/** The full message: the summary plus the parsed body, attachments (decoded bytes) and the raw source. */
export type ImapMessage = Message & Omit<ImapMessageSummary, "source"> & { readonly raw: Uint8Array };

/** Parses an RFC 5322 source with mailparser; attachment bytes are exactly the decoded MIME parts. */
export async function parseMessage(summary: ImapMessageSummary, source: Buffer): Promise<ImapMessage> {
  const parsed = await simpleParser(source, { skipTextToHtml: true, skipImageLinks: true });
  const headers: Record<string, string> = {};
  for (const { key, line } of parsed.headerLines) {
    const value = line
      .slice(line.indexOf(":") + 1)
      .replace(/\r?\n[ \t]+/g, " ")
      .trim();
    headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
  }
  const attachments: ReceivedAttachment[] = parsed.attachments.map((a) => ({
    filename: a.filename ?? "attachment",
    contentType: a.contentType,
    size: a.content.length,
    content: new Uint8Array(a.content.buffer, a.content.byteOffset, a.content.byteLength),
    ...(a.contentId ? { contentId: a.contentId } : {}),
    ...(a.contentDisposition === "inline" ? { inline: true } : {}),
  }));
  const { source: _omit, ...rest } = summary;
  return {
    ...rest,
    // The parsed headers fill what an envelope may lack (e.g. when the summary came from a bare UID).
    subject: summary.subject || parsed.subject || "",
    ...(parsed.text !== undefined ? { text: parsed.text } : {}),
    ...(typeof parsed.html === "string" ? { html: parsed.html } : {}),
    attachments,
    hasAttachments: attachments.some((a) => !a.inline),
    headers,
    raw: new Uint8Array(source.buffer, source.byteOffset, source.byteLength),
  };
}
