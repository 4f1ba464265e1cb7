import {
  type Address,
  formatAddress,
  generateMessageId,
  type OutgoingMessage,
  parseAddress,
  parseAddressList,
  validateOutgoingMessage,
} from "@m365-mail/core";
import type { SendMailOptions } from "nodemailer";
import addressparser from "nodemailer/lib/addressparser";

export interface BuiltMail {
  /** What nodemailer composes and sends. */
  mail: SendMailOptions;
  messageId: string;
  envelope: { from: string; to: string[] };
}

const toText = (a: Address) => formatAddress(a);

/**
 * An OutgoingMessage as nodemailer mail options: From defaults to the mailbox, a Message-ID is always
 * set (so that a retried send can be found again), Bcc goes in the envelope only. Invalid input
 * throws MESSAGE_INVALID before anything is sent.
 */
export function buildMail(message: OutgoingMessage, mailbox: string): BuiltMail {
  validateOutgoingMessage(message);
  if (message.raw !== undefined) return buildRaw(message, mailbox);
  const from = message.from !== undefined ? parseAddress(message.from) : { address: mailbox };
  const to = parseAddressList(message.to);
  const cc = parseAddressList(message.cc);
  const bcc = parseAddressList(message.bcc);
  const replyTo = parseAddressList(message.replyTo);
  const messageId = message.messageId ?? generateMessageId(from.address);
  const mail: SendMailOptions = {
    from: toText(from),
    messageId,
    envelope: { from: from.address, to: [...to, ...cc, ...bcc].map((a) => a.address) },
    // Filled fields only: nodemailer would print empty headers, and does less work without them.
    ...(to.length > 0 ? { to: to.map(toText) } : {}),
    ...(cc.length > 0 ? { cc: cc.map(toText) } : {}),
    ...(bcc.length > 0 ? { bcc: bcc.map(toText) } : {}),
    ...(replyTo.length > 0 ? { replyTo: replyTo.map(toText) } : {}),
    ...(message.subject !== undefined ? { subject: message.subject } : {}),
    ...(message.text !== undefined ? { text: message.text } : {}),
    ...(message.html !== undefined ? { html: message.html } : {}),
    ...(message.headers ? { headers: { ...message.headers } } : {}),
    ...(message.attachments?.length
      ? {
          attachments: message.attachments.map((a) => ({
            filename: a.filename,
            content: typeof a.content === "string" ? a.content : Buffer.from(a.content),
            ...(a.contentType ? { contentType: a.contentType } : {}),
            ...(a.contentId ? { cid: a.contentId.replace(/^<|>$/g, "") } : {}),
            contentDisposition: a.inline || a.contentId ? ("inline" as const) : ("attachment" as const),
          })),
        }
      : {}),
  };
  return { mail, messageId, envelope: mail.envelope as BuiltMail["envelope"] };
}

/** A prepared RFC 5322 message: recipients come from `to/cc/bcc` when given, else from its headers. */
function buildRaw(message: OutgoingMessage, mailbox: string): BuiltMail {
  let raw = typeof message.raw === "string" ? Buffer.from(message.raw, "utf8") : Buffer.from(message.raw!);
  const headers = headerBlock(raw);
  const header = (name: string) => headers.filter((h) => h.name === name).map((h) => h.value);
  const addresses = (name: string) =>
    header(name).flatMap((v) =>
      addressparser(v, { flatten: true })
        .map((a) => a.address)
        .filter(Boolean),
    );
  const given = [
    ...parseAddressList(message.to),
    ...parseAddressList(message.cc),
    ...parseAddressList(message.bcc),
  ];
  const to =
    given.length > 0
      ? given.map((a) => a.address)
      : [...addresses("to"), ...addresses("cc"), ...addresses("bcc")];
  const from =
    message.from !== undefined ? parseAddress(message.from).address : (addresses("from")[0] ?? mailbox);
  let messageId = header("message-id")[0];
  if (!messageId) {
    // Every sent message gets a Message-ID, so that a retried send can be found again.
    messageId = message.messageId ?? generateMessageId(from);
    raw = Buffer.concat([Buffer.from(`Message-ID: ${messageId}\r\n`), raw]);
  }
  return { mail: { raw, envelope: { from, to } }, messageId, envelope: { from, to } };
}

function headerBlock(raw: Buffer): { name: string; value: string }[] {
  const text = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString("utf8");
  const end = text.search(/\r?\n\r?\n/);
  return (end >= 0 ? text.slice(0, end) : text)
    .replace(/\r?\n[ \t]+/g, " ")
    .split(/\r?\n/)
    .map((line) => {
      const colon = line.indexOf(":");
      return { name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() };
    })
    .filter((h) => h.name !== "");
}
