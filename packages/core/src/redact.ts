/**
 * Removes secrets from any text before it reaches a log, an error message or CLI output.
 * Known secrets (a password, a token) are registered with `registerSecret`; shapes that are
 * always secret (JWTs, Bearer values, XOAUTH2 strings, OAuth form fields) are caught by pattern.
 */
const knownSecrets = new Set<string>();

export const REDACTED = "[REDACTED]";

/** Remember a value (a password, a raw token) so that every later `redact()` removes it. */
export function registerSecret(secret: string | undefined | null): void {
  // Very short values would redact ordinary words; they are still caught by the patterns below.
  if (secret && secret.length >= 6) knownSecrets.add(secret);
}

export function forgetSecret(secret: string): void {
  knownSecrets.delete(secret);
}

const PATTERNS: readonly RegExp[] = [
  // JWTs (access and id tokens): three base64url parts, the first starting with eyJ.
  /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g,
  // Authorization headers and SASL bodies.
  /(Bearer\s+)[^\s"',;\x01]+/gi,
  // OAuth form and JSON fields that carry secrets.
  /((?:password|refresh_token|access_token|id_token|client_secret|assertion)["']?\s*[=:]\s*["']?)[^&\s"',}]+/gi,
  // Base64 of "user=...\x01auth=Bearer" (XOAUTH2) and "n,a=" (OAUTHBEARER) as sent on the wire.
  /dXNlcj[A-Za-z0-9+/=]{20,}/g,
  // The WS-Trust UsernameToken's password (federated sign-in), in any prefix.
  /(<(?:[\w.-]+:)?Password\b[^>]*>)[^<]*/g,
  /bixhP[A-Za-z0-9+/=]{20,}/g,
];

export function redact(text: string, extraSecrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of [...knownSecrets, ...extraSecrets]) {
    if (secret && secret.length > 0) out = out.split(secret).join(REDACTED);
  }
  for (const pattern of PATTERNS) {
    out = out.replace(pattern, (match, keep: unknown) =>
      typeof keep === "string" && match.startsWith(keep) ? keep + REDACTED : REDACTED,
    );
  }
  return out;
}

/** Deep-redacts a value for structured logs; keys that name secrets are always replaced. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redact(value);
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return redact(`${value.name}: ${value.message}`);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : redactValue(v, depth + 1);
  }
  return out;
}

const SECRET_KEY =
  /^(password|passphrase|secret|client_secret|token|access_?token|refresh_?token|id_?token|authorization|key)$/i;
