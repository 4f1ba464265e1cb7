/**
 * Graph's MIME send delivers to the To, Cc and Bcc headers; SMTP delivers to the envelope. This makes the
 * two agree for the recipients a client puts only in the envelope (Bcc): they go into a Bcc header,
 * which Exchange strips before delivery. The message's other bytes are not touched.
 */
export function withEnvelopeRecipients(raw: Buffer, envelopeRecipients: readonly string[]): Buffer {
  const headerEnd = findHeaderEnd(raw);
  // latin1 maps bytes 1:1, so offsets stay byte offsets.
  const header = raw.subarray(0, headerEnd).toString("latin1");
  const inHeaders = new Set(headerAddresses(header, ["to", "cc", "bcc"]));
  const missing = [...new Set(envelopeRecipients.map((r) => r.toLowerCase()))].filter(
    (r) => !inHeaders.has(r),
  );
  if (missing.length === 0) return raw;
  const eol = header.includes("\r\n") || headerEnd === 0 ? "\r\n" : "\n";
  // A message has at most one Bcc field (RFC 5322): add to the one it has, at the end of its value.
  const bcc = headerField(header, "bcc");
  if (bcc) {
    const end = bcc.index + bcc[0].length;
    const joiner = bcc[1]!.trim() === "" ? " " : `,${eol} `;
    return Buffer.concat([
      raw.subarray(0, end),
      Buffer.from(`${joiner}${missing.join(`,${eol} `)}`, "latin1"),
      raw.subarray(end),
    ]);
  }
  const line = `Bcc: ${missing.join(`,${eol} `)}${eol}`;
  return Buffer.concat([Buffer.from(line, "latin1"), raw]);
}

/** Fields named `names` (lower case) of a header, each with its folded lines; group 1 is the raw value. */
const fieldPattern = (names: readonly string[], flags: string) =>
  new RegExp(`^(?:${names.join("|")}):((?:.*)(?:\\r?\\n[ \\t].*)*)`, flags);

/** The first `name` field of a header (with its folded lines), or null. */
export function headerField(header: string, name: string): RegExpExecArray | null {
  return fieldPattern([name], "im").exec(header);
}

/** Lower-cased addresses in the named header fields (unfolded). */
export function headerAddresses(header: string, names: readonly string[]): string[] {
  return [...header.matchAll(fieldPattern(names, "gim"))].flatMap((m) => addressesIn(m[1] ?? ""));
}

/**
 * The addresses of one address-list field (RFC 5322): quoted display names and comments are text, not
 * addresses ("Team (cc bob@x.com)" <a@x.com> names a@x.com only); `<…>` wins over the words before it;
 * a group's name ("Team: a@x.com, b@x.com;") is skipped.
 */
function addressesIn(value: string): string[] {
  let text = value.replace(/"(?:[^"\\]|\\.)*"/g, " ");
  for (let previous = ""; previous !== text; ) {
    previous = text;
    text = text.replace(/\([^()]*\)/g, " ");
  }
  return text.split(/[,;]/).flatMap((part) => {
    const angle = /<([^<>]*)>/.exec(part);
    const candidate = angle ? angle[1]! : part.replace(/^[^:<>@]*:/, "");
    const address = /[^\s<>",;:()]+@[^\s<>",;:()]+/.exec(candidate)?.[0];
    return address ? [address.toLowerCase()] : [];
  });
}

export function findHeaderEnd(source: Buffer): number {
  const crlf = source.indexOf("\r\n\r\n");
  const lf = source.indexOf("\n\n");
  if (crlf === -1 && lf === -1) return source.byteLength;
  if (crlf === -1) return lf;
  if (lf === -1) return crlf;
  return Math.min(crlf, lf);
}
