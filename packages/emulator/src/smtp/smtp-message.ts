import { randomBytes } from "node:crypto";
import addressparser from "nodemailer/lib/addressparser";

/** The header block of an RFC 5322 message (up to the first empty line), unfolded. */
function headerBlock(raw: Buffer): string {
  const text = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  return (end >= 0 ? text.slice(0, end) : text).replace(/\r?\n[ \t]+/g, " ");
}

/** Values of one header (case-insensitive), in order. */
export function headerValues(raw: Buffer, name: string): string[] {
  const prefix = `${name.toLowerCase()}:`;
  return headerBlock(raw)
    .split(/\r?\n/)
    .filter((line) => line.toLowerCase().startsWith(prefix))
    .map((line) => line.slice(prefix.length).trim());
}

/** Addresses in the From: header, lowercased. Exchange checks Send As against these too. */
export function fromAddresses(raw: Buffer): string[] {
  const out: string[] = [];
  for (const value of headerValues(raw, "from")) {
    for (const entry of addressparser(value, { flatten: true })) {
      if (entry.address) out.push(entry.address.toLowerCase());
    }
  }
  return out;
}

/** The Message-ID header as sent, or undefined. */
export function messageIdOf(raw: Buffer): string | undefined {
  return headerValues(raw, "message-id")[0];
}

/**
 * The message as Exchange stores and relays it: one without a Message-ID gets one, made up by the
 * server (`<…@host>`), at the top of its header. MS-OXCMAIL 2.1.3.2.11: a message submitted to SMTP
 * without an internet message id gets one generated per RFC 2822.
 */
export function withMessageId(raw: Buffer, host: string): { raw: Buffer; messageId: string } {
  const existing = messageIdOf(raw);
  if (existing) return { raw, messageId: existing };
  // Exchange's ids look like <SN6PR04MB4063A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8@SN6PR04MB4063.namprd04.prod.outlook.com>.
  const messageId = `<${randomBytes(20).toString("hex").toUpperCase()}@${host}>`;
  return { raw: Buffer.concat([Buffer.from(`Message-ID: ${messageId}\r\n`, "latin1"), raw]), messageId };
}
