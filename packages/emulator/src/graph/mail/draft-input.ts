import type { AddressObject, ParsedMail } from "mailparser";
import type { GraphMessageInput, GraphRecipient } from "../mime.js";

/** The writable fields of a stored message, to recompose it after a change. */
export async function draftInputOf(parsed: ParsedMail): Promise<GraphMessageInput> {
  const list = (value: AddressObject | AddressObject[] | undefined): GraphRecipient[] =>
    (Array.isArray(value) ? value : value ? [value] : [])
      .flatMap((group) => group.value)
      .filter((entry) => entry.address)
      .map((entry) => ({ emailAddress: { name: entry.name ?? "", address: entry.address! } }));
  const html = typeof parsed.html === "string" ? parsed.html : undefined;
  return {
    subject: parsed.subject ?? "",
    body: html ? { contentType: "html", content: html } : { contentType: "text", content: parsed.text ?? "" },
    ...(list(parsed.from)[0] ? { from: list(parsed.from)[0]! } : {}),
    toRecipients: list(parsed.to),
    ccRecipients: list(parsed.cc),
    bccRecipients: list(parsed.bcc),
    replyTo: list(parsed.replyTo),
    attachments: parsed.attachments.map((attachment) => ({
      "@odata.type": "#microsoft.graph.fileAttachment",
      name: attachment.filename ?? "attachment",
      contentType: attachment.contentType,
      contentBytes: attachment.content.toString("base64"),
      isInline: attachment.contentDisposition === "inline",
      ...(attachment.contentId ? { contentId: attachment.contentId.replace(/^<|>$/g, "") } : {}),
    })),
  };
}
