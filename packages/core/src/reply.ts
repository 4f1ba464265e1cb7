import { formatAddress, parseAddressList } from "./address.js";
import { parseAddressHeader } from "./address-header.js";
import { M365MailError } from "./errors.js";
import type { Address, AddressInput, Message, OutgoingAttachment, OutgoingMessage } from "./message.js";

export type ReplyKind = "reply" | "replyAll" | "forward";

/** A reply, reply-all or forward of a message the mailbox holds. */
export interface ReplyInput {
  kind: ReplyKind;
  /** Your text, above the quoted original. */
  text?: string;
  /** Your text as HTML (the original is quoted below it in a blockquote). */
  html?: string;
  /** Forward: who gets it (required). Reply: added to the original's sender (and, for reply-all, its recipients). */
  to?: AddressInput | AddressInput[];
  cc?: AddressInput | AddressInput[];
  attachments?: OutgoingAttachment[];
}

const REPLY_PREFIX = /^\s*(re|aw|sv)\s*:/i;
const FORWARD_PREFIX = /^\s*(fwd?|fw|wg)\s*:/i;

/** "Re: …" or "Fwd: …", without stacking prefixes ("Re: Re: …"). */
export function replySubject(kind: ReplyKind, subject: string): string {
  if (kind === "forward") return FORWARD_PREFIX.test(subject) ? subject : `Fwd: ${subject}`;
  return REPLY_PREFIX.test(subject) ? subject : `Re: ${subject}`;
}

/** Who a reply goes to: the sender (Reply-To when set); reply-all adds the other recipients, never yourself. */
export function replyRecipients(
  kind: ReplyKind,
  original: Message,
  self: string,
): { to: Address[]; cc: Address[] } {
  if (kind === "forward") return { to: [], cc: [] };
  const me = self.toLowerCase();
  const seen = new Set<string>([me]);
  const keep = (list: readonly Address[]) =>
    list.filter((a) => {
      const key = a.address.toLowerCase();
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  // Reply-To is an address list as received: quoted names with commas, comments, groups, encoded words.
  const replyTo = parseAddressHeader(headerValue(original, "reply-to"));
  const sender = replyTo.length > 0 ? replyTo : original.from ? [original.from] : [];
  // A reply to your own message goes to its recipients (yourself too, when you were one), as in Outlook.
  const fromSelf = sender.length > 0 && sender.every((a) => a.address.toLowerCase() === me);
  const to = fromSelf
    ? original.to.map((a) => {
        seen.add(a.address.toLowerCase());
        return a;
      })
    : keep(sender);
  if (kind === "reply") return { to, cc: [] };
  return { to: [...to, ...keep(original.to)], cc: keep(original.cc) };
}

/** The `<id@host>` message ids in a References or In-Reply-To value, without folding, commas or comments. */
function messageIds(value: string | undefined): string[] {
  return value?.match(/<[^<>\s]+>/g) ?? [];
}

function headerValue(message: Message, name: string): string | undefined {
  const headers = message.headers ?? {};
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}

/**
 * The message a reply or forward sends over SMTP: threading headers (`In-Reply-To`, `References`),
 * the subject prefix, recipients, and the original quoted below the new text (forward: with its
 * attachments). Graph does this server-side (`createReply`); transports without it use this.
 */
export function composeReply(original: Message, input: ReplyInput, self: string): OutgoingMessage {
  const extraTo = parseAddressList(input.to);
  const extraCc = parseAddressList(input.cc);
  const computed = replyRecipients(input.kind, original, self);
  const to = [...computed.to, ...extraTo];
  const cc = [...computed.cc, ...extraCc];
  if (to.length === 0 && cc.length === 0) {
    throw new M365MailError(
      "MESSAGE_INVALID",
      input.kind === "forward"
        ? "a forward needs at least one recipient"
        : "the original has no sender to reply to",
      { source: "core", hint: "Name the recipients (`to`)." },
    );
  }
  const headers: Record<string, string> = {};
  const parentId = original.internetMessageId;
  if (input.kind !== "forward") {
    // RFC 5322 3.6.4: the parent's References (or, without them, its In-Reply-To when that holds a
    // single id), then the parent's Message-ID.
    const references = messageIds(headerValue(original, "references"));
    const inReplyTo = messageIds(headerValue(original, "in-reply-to"));
    const thread = references.length > 0 ? references : inReplyTo.length === 1 ? inReplyTo : [];
    if (parentId) {
      headers["In-Reply-To"] = parentId;
      thread.push(parentId);
    }
    if (thread.length > 0) headers.References = thread.join(" ");
  } else if (parentId) {
    // A forward starts its own thread but keeps the link, as Outlook does.
    headers.References = parentId;
  }
  const intro = quoteIntro(input.kind, original);
  const originalText = original.text ?? (original.html ? stripTags(original.html) : "");
  const quoted =
    input.kind === "forward"
      ? originalText
      : originalText
          .replace(/\s+$/, "")
          .split(/\r?\n/)
          .map((line) => (line === "" ? ">" : `> ${line}`))
          .join("\n");
  const text = `${input.text ?? ""}\n\n${intro}\n${quoted}\n`;
  const html =
    input.html !== undefined
      ? `${input.html}<br><div>${escapeHtml(intro).replace(/\n/g, "<br>")}</div><blockquote>${original.html ?? escapeHtml(originalText).replace(/\n/g, "<br>")}</blockquote>`
      : undefined;
  const forwarded: OutgoingAttachment[] =
    input.kind === "forward"
      ? original.attachments.map((a) => ({
          filename: a.filename,
          content: a.content,
          contentType: a.contentType,
          ...(a.contentId ? { contentId: a.contentId } : {}),
          ...(a.inline ? { inline: true } : {}),
        }))
      : [];
  const attachments = [...forwarded, ...(input.attachments ?? [])];
  return {
    to,
    ...(cc.length > 0 ? { cc } : {}),
    subject: replySubject(input.kind, original.subject),
    text,
    ...(html !== undefined ? { html } : {}),
    ...(attachments.length > 0 ? { attachments } : {}),
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
  };
}

function quoteIntro(kind: ReplyKind, original: Message): string {
  const from = original.from ? formatAddress(original.from) : "(unknown sender)";
  const date = original.receivedAt?.toUTCString() ?? "";
  if (kind !== "forward") return `On ${date}, ${from} wrote:`;
  return [
    "---------- Forwarded message ---------",
    `From: ${from}`,
    `Date: ${date}`,
    `Subject: ${original.subject}`,
    `To: ${original.to.map(formatAddress).join(", ")}`,
    ...(original.cc.length > 0 ? [`Cc: ${original.cc.map(formatAddress).join(", ")}`] : []),
    "",
  ].join("\n");
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function stripTags(html: string): string {
  return html
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>|<\/p>|<\/div>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}
