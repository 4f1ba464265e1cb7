/** A decoded SASL PLAIN response (RFC 4616): `[authzid] NUL authcid NUL passwd`. */
export interface PlainCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Decodes the base64 of a SASL PLAIN response; undefined when it is not one. An authorization identity
 * other than the login name is refused (undefined): the bridge maps logins to mailboxes itself.
 */
export function decodeSaslPlain(encoded: string): PlainCredentials | undefined {
  const text = encoded.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const parts = Buffer.from(text, "base64").toString("utf8").split("\0");
  if (parts.length !== 3) return undefined;
  const [authzid, username, password] = parts as [string, string, string];
  if (!username || (authzid && authzid.toLowerCase() !== username.toLowerCase())) return undefined;
  return { username, password };
}
