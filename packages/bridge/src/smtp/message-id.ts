import { generateMessageId } from "@m365-mail/core";
import { findHeaderEnd } from "./recipients.js";

const FIELD = /^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)\r?\n/im;

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
  const found = FIELD.exec(`${header}\n`);
  const value = found?.[1]?.replace(/\r?\n[ \t]+/g, " ").trim();
  if (found && value && /^<[^<>\s]+@[^<>\s]+>$/.test(value) && !/\n/.test(found[1]!)) {
    return { raw, messageId: value };
  }
  const bare = value?.replace(/^<|>$/g, "");
  const messageId = bare && /^[^<>\s]+@[^<>\s]+$/.test(bare) ? `<${bare}>` : generateMessageId(mailbox);
  const line = `Message-ID: ${messageId}`;
  if (!found) return { raw: Buffer.concat([Buffer.from(`${line}\r\n`, "latin1"), raw]), messageId };
  // The header's last field ends where the header does: its line break is the blank line's.
  const fieldEnd = found.index + found[0].length;
  const last = fieldEnd > headerEnd;
  return {
    raw: Buffer.concat([
      raw.subarray(0, found.index),
      Buffer.from(last ? line : `${line}\r\n`, "latin1"),
      raw.subarray(last ? headerEnd : fieldEnd),
    ]),
    messageId,
  };
}
