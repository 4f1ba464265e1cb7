import { TextDecoder } from "node:util";
import type { Address } from "@m365-mail/core";

/** What a summary takes from ENVELOPE, read from the message's own header instead. */
export interface HeaderFields {
  readonly subject: string;
  readonly from?: Address;
  readonly to: Address[];
  readonly cc: Address[];
  readonly messageId?: string;
}

const WANTED = ["subject", "from", "to", "cc", "message-id"].map((name) => ({
  name,
  bytes: Buffer.from(`${name}:`),
}));

/** The wanted field whose name (and colon) starts the line at `at`, compared without regard to case. */
function fieldAt(bytes: Buffer, at: number, end: number): (typeof WANTED)[number] | undefined {
  const first = bytes[at]! | 0x20;
  for (const field of WANTED) {
    const name = field.bytes;
    if (name[0] !== first || at + name.length > end) continue;
    let i = 1;
    // `| 0x20` lowercases letters and leaves "-" and ":" as they are.
    while (i < name.length && (bytes[at + i]! | 0x20) === (name[i]! | 0x20)) i++;
    if (i === name.length) return field;
  }
  return undefined;
}

/**
 * Reads Subject, From, To, Cc and Message-ID from an RFC 5322 source. A listing that fetches sources
 * anyway reads these here instead of asking for ENVELOPE: imapflow's parsing of ENVELOPE costs about a
 * fifth of a bulk FETCH. The header is scanned as bytes and only the wanted fields are decoded. The
 * first occurrence of each field counts, as in Dovecot's ENVELOPE; encoded words (RFC 2047) are
 * decoded, raw UTF-8 (RFC 6532) is read as such.
 */
export function readHeaderFields(source: Uint8Array): HeaderFields {
  const bytes = Buffer.isBuffer(source)
    ? source
    : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  const values = new Map<string, string>();
  let current: string | undefined;
  for (let at = 0; at < bytes.length; ) {
    let next = bytes.indexOf(0x0a, at);
    if (next < 0) next = bytes.length;
    const lineEnd = next > at && bytes[next - 1] === 0x0d ? next - 1 : next;
    if (lineEnd === at) break; // the empty line that ends the header
    const first = bytes[at];
    if (first === 0x20 || first === 0x09) {
      // A folded line: unfolding removes the line break and keeps the white space.
      if (current) values.set(current, values.get(current) + bytes.toString("utf8", at, lineEnd));
    } else {
      const field = fieldAt(bytes, at, lineEnd);
      current = field && !values.has(field.name) ? field.name : undefined;
      if (current) values.set(current, bytes.toString("utf8", at + field!.bytes.length, lineEnd));
    }
    at = next + 1;
  }
  const subject = values.get("subject");
  const from = parseAddressList(values.get("from"))[0];
  const messageId = values.get("message-id")?.trim();
  return {
    subject: subject === undefined ? "" : decodeWords(subject.trim()),
    ...(from ? { from } : {}),
    to: parseAddressList(values.get("to")),
    cc: parseAddressList(values.get("cc")),
    ...(messageId ? { messageId } : {}),
  };
}

/**
 * An address list as header text → addresses: `"Doe, John" <j@x>, k@y (Kay), Team: a@z, b@z;`.
 * Quoted strings, comments (a comment names an address that has no display name), angle addresses
 * and groups (their members are listed, the group name is not an address). Entries without an
 * address are left out.
 */
export function parseAddressList(value: string | undefined): Address[] {
  const addresses: Address[] = [];
  if (!value) return addresses;
  // The usual one `Name <address>` or `address`, without the characters that need the full parse.
  if (!SPECIAL.test(value)) {
    const open = value.indexOf("<");
    const close = value.indexOf(">", open);
    const address = (open < 0 ? value : value.slice(open + 1, close < 0 ? value.length : close)).trim();
    pushAddress(addresses, address, open < 0 ? "" : value.slice(0, open));
    return addresses;
  }
  let display = "";
  let angle: string | undefined;
  let comment = "";
  const finish = () => {
    pushAddress(addresses, (angle ?? display).trim(), angle === undefined ? comment : display || comment);
    display = "";
    angle = undefined;
    comment = "";
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') {
      // Quoted string: its text is part of the display name, without the quotes and escapes.
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === "\\" && i + 1 < value.length) i++;
        display += value[i];
      }
    } else if (c === "(") {
      let depth = 1;
      let text = "";
      while (++i < value.length) {
        const d = value[i]!;
        if (d === "\\") {
          text += value[++i] ?? "";
          continue;
        }
        if (d === "(") depth++;
        else if (d === ")" && --depth === 0) break;
        text += d;
      }
      if (!comment) comment = text;
    } else if (c === "<") {
      const close = value.indexOf(">", i);
      angle = value.slice(i + 1, close < 0 ? value.length : close);
      i = close < 0 ? value.length : close;
    } else if (c === ",") {
      finish();
    } else if (c === ":" && angle === undefined) {
      // A group's name: its members follow.
      display = "";
      comment = "";
    } else if (c === ";") {
      finish();
    } else {
      display += c;
    }
  }
  finish();
  return addresses;
}

const SPECIAL = /["(),:;\\]|<.*</;

/** Adds an address unless it is empty or not one word; the name's white space is collapsed and decoded. */
function pushAddress(addresses: Address[], address: string, rawName: string): void {
  if (!address || /\s/.test(address)) return;
  const name = collapse(rawName);
  addresses.push(name ? { address, name: decodeWords(name) } : { address });
}

function collapse(text: string): string {
  const trimmed = text.trim();
  return /\s\s|[\t\r\n]/.test(trimmed) ? trimmed.replace(/\s+/g, " ") : trimmed;
}

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

/**
 * Decodes RFC 2047 encoded words. Adjacent words (only white space between) are joined before their
 * bytes are decoded, since a multi-byte character may be split across two of them. A charset Node
 * cannot decode leaves the word as it is.
 */
export function decodeWords(text: string): string {
  if (!text.includes("=?")) return text;
  let out = "";
  let last = 0;
  let pending: { charset: string; bytes: Buffer[] } | undefined;
  const flush = () => {
    if (!pending) return;
    out += decoderFor(pending.charset)!.decode(Buffer.concat(pending.bytes));
    pending = undefined;
  };
  for (const match of text.matchAll(ENCODED_WORD)) {
    const between = text.slice(last, match.index);
    if (!pending || /\S/.test(between)) {
      flush();
      out += between;
    }
    const charset = match[1]!.split("*")[0]!.toLowerCase();
    const data = match[3]!;
    const bytes =
      match[2]!.toUpperCase() === "B"
        ? Buffer.from(data, "base64")
        : Buffer.from(
            data
              .replace(/_/g, " ")
              .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) =>
                String.fromCharCode(Number.parseInt(hex, 16)),
              ),
            "latin1",
          );
    if (pending && pending.charset !== charset) flush();
    if (!decoderFor(charset)) {
      flush();
      out += match[0];
    } else {
      pending ??= { charset, bytes: [] };
      pending.bytes.push(bytes);
    }
    last = match.index + match[0].length;
  }
  flush();
  return out + text.slice(last);
}

// Charset names come from incoming mail: keep only a few.
const decoders = new Map<string, TextDecoder | undefined>();
function decoderFor(charset: string): TextDecoder | undefined {
  if (!decoders.has(charset)) {
    if (decoders.size >= 64) decoders.clear();
    let decoder: TextDecoder | undefined;
    try {
      decoder = new TextDecoder(charset);
    } catch {
      decoder = undefined;
    }
    decoders.set(charset, decoder);
  }
  return decoders.get(charset);
}
