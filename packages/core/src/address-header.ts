import { TextDecoder } from "node:util";
import type { Address } from "./message.js";

/**
 * An address-list header (From, To, Cc, Reply-To…) as received → addresses, per RFC 5322 3.4:
 * `"Doe, John" <j@x>, k@y (Kay), Team: a@z, b@z;, =?UTF-8?B?SsO2cmc=?= <j@z>`.
 * Quoted strings (with `\`-escapes, commas and colons inside), comments (a comment names an address
 * that has no display name), angle addresses (an obsolete source route `<@a,@b:x@y>` is dropped) and
 * groups (their members are listed, the group's name is not an address). Display names are decoded
 * (RFC 2047 encoded words) and their white space collapsed. Entries without an address are left out.
 * For addresses a caller types (`"Name <a@b.c>"`), use `parseAddress` instead: it also validates.
 */
export function parseAddressHeader(value: string | undefined): Address[] {
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
      const inside = value.slice(i + 1, close < 0 ? value.length : close);
      // obs-angle-addr: `<@relay1,@relay2:user@host>` names user@host.
      angle = inside.trimStart().startsWith("@") ? inside.slice(inside.indexOf(":") + 1) : inside;
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
  addresses.push(name ? { address, name: decodeEncodedWords(name) } : { address });
}

function collapse(text: string): string {
  const trimmed = text.trim();
  return /\s\s|[\t\r\n]/.test(trimmed) ? trimmed.replace(/\s+/g, " ") : trimmed;
}

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

/**
 * Decodes RFC 2047 encoded words (`=?UTF-8?B?…?=`, `=?iso-8859-1?Q?…?=`). Adjacent words (only white
 * space between) are joined before their bytes are decoded, since a multi-byte character may be split
 * across two of them. A charset Node cannot decode leaves the word as it is.
 */
export function decodeEncodedWords(text: string): string {
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
