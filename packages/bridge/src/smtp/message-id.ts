import { generateMessageId } from "@m365-mail/core";
import { findHeaderEnd, headerField } from "./recipients.js";

/**
 * The message with exactly one well-formed Message-ID, and that ID: the spool fixes it before storing
 * the message, because it is what Sent Items are searched for before a resend. A device's own ID is
 * kept — folded onto the next line, or without its angle brackets (common on scanners), it is written
 * as one `Message-ID: <…>` line; one that is no address at all is replaced, never left beside a second.
 */
export function withMessageId(raw: Buffer, mailbox: string): { raw: Buffer; messageId: string } {
  const headerEnd = findHeaderEnd(raw);
  // latin1 maps bytes 1:1, so offsets stay byte offsets.
  const header = raw.subarray(0, headerEnd).toString("latin1");
  const found = headerField(header, "message-id");
  const folded = found?.[1]?.includes("\n") ?? false;
  const value = found?.[1]?.replace(/\r?\n[ \t]+/g, " ").trim();
  if (value && !folded && /^<[^<>\s]+@[^<>\s]+>$/.test(value)) return { raw, messageId: value };
  const bare = value?.replace(/^<|>$/g, "");
  const messageId = bare && /^[^<>\s]+@[^<>\s]+$/.test(bare) ? `<${bare}>` : generateMessageId(mailbox);
  const line = Buffer.from(`Message-ID: ${messageId}`, "latin1");
  if (!found) return { raw: Buffer.concat([line, Buffer.from("\r\n"), raw]), messageId };
  // The field (with its folded lines) is replaced; the line break that ends it stays.
  const fieldEnd = found.index + found[0].length;
  return { raw: Buffer.concat([raw.subarray(0, found.index), line, raw.subarray(fieldEnd)]), messageId };
}
