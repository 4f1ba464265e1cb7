import type { OutgoingMessage } from "@m365-mail/core";
import MailComposer from "nodemailer/lib/mail-composer";

/**
 * An OutgoingMessage as RFC 5322 bytes (nodemailer's composer, as an SMTP client would send it): what tests
 * put straight into the emulator's store to have mail "arrive" for a transport that reads.
 */
export async function toMime(message: OutgoingMessage, from = "bob@fabrikam.com"): Promise<Buffer> {
  if (message.raw !== undefined) return Buffer.from(message.raw);
  const list = (v: OutgoingMessage["to"]) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
  const composer = new MailComposer({
    from: (message.from as string | undefined) ?? from,
    to: list(message.to) as never,
    cc: list(message.cc) as never,
    subject: message.subject,
    text: message.text,
    html: message.html,
    headers: message.headers,
    messageId: message.messageId,
    attachments: (message.attachments ?? []).map((a) => ({
      filename: a.filename,
      content: typeof a.content === "string" ? a.content : Buffer.from(a.content),
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.contentId ? { cid: a.contentId } : {}),
    })),
  });
  return composer.compile().build();
}
