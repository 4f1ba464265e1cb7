/**
 * The `Content-Disposition` of an attachment download: always `attachment` (never rendered in the
 * page's origin), an ASCII `filename` for old clients and the full name as RFC 8187 `filename*`.
 * Names come from whoever sent the mail, so both forms are built to be safe for any string.
 */
export function attachmentDisposition(filename: string): string {
  // Cut by code points, not UTF-16 units: half of a surrogate pair cannot be percent-encoded.
  const name = Array.from(wellFormed(filename)).slice(0, 150).join("");
  const ascii = name.replace(/[^\x20-\x7e]|["\\/]/g, "_") || "attachment";
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeRfc8187(name)}`;
}

/** A lone surrogate (a broken name from a sender) becomes U+FFFD instead of an encoding error. */
function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** encodeURIComponent leaves ' ( ) * as they are; RFC 8187's attr-char does not allow them. */
function encodeRfc8187(text: string): string {
  return encodeURIComponent(text).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
