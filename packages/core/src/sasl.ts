/**
 * SASL initial responses for OAuth 2.0 bearer tokens, as Exchange Online expects them.
 * See shared/m365-facts.md "SASL strings".
 */

/** `base64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")` — IMAP, POP3 and SMTP XOAUTH2. */
export function encodeXOAuth2(user: string, accessToken: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, "utf8").toString("base64");
}

/** RFC 7628 OAUTHBEARER: `n,a=user,\x01host=h\x01port=p\x01auth=Bearer t\x01\x01`. */
export function encodeOAuthBearer(user: string, accessToken: string, host?: string, port?: number): string {
  // RFC 5801 gs2 authzid escapes "," as "=2C" and "=" as "=3D".
  const authzid = user.replace(/=/g, "=3D").replace(/,/g, "=2C");
  let body = `n,a=${authzid},\x01`;
  if (host) body += `host=${host}\x01`;
  if (port !== undefined) body += `port=${port}\x01`;
  body += `auth=Bearer ${accessToken}\x01\x01`;
  return Buffer.from(body, "utf8").toString("base64");
}

/** Decodes an XOAUTH2 initial response; used by the emulator and by tests. */
export function decodeXOAuth2(encoded: string): { user: string; token: string } | undefined {
  const text = Buffer.from(encoded, "base64").toString("utf8");
  const match = /^user=([^\x01]*)\x01auth=Bearer ([^\x01]+)\x01\x01$/.exec(text);
  return match ? { user: match[1]!, token: match[2]! } : undefined;
}

/**
 * A server challenge after a failed XOAUTH2 (`334 <b64 JSON>` / `+ <b64 JSON>`) decodes to
 * `{"status":"401","schemes":"bearer","scope":"..."}`. The client must answer with an empty line.
 */
export function decodeSaslChallenge(encoded: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(encoded.trim(), "base64").toString("utf8"));
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
