/**
 * Removes secrets from any text before it reaches a log, an error message or CLI output.
 * Known secrets (a password, a token) are registered with `registerSecret`; shapes that are
 * always secret (JWTs, Bearer values, XOAUTH2 strings, OAuth form fields) are caught by pattern.
 */
/** Passwords, API keys, passphrases: few, set by configuration, kept for the life of the process. */
const knownSecrets = new Set<string>();
/**
 * Secrets held while something uses them (`holdSecret`), e.g. the password of a sign-in that may fail:
 * a bridge tries every password a client sends, and a wrong one must not stay registered for ever.
 */
const heldSecrets = new Map<string, number>();
/**
 * Tokens: every refresh brings new ones, so a long-running process would otherwise hold every token it
 * ever saw (and `redact` would scan them all on each log line). Superseded ones are forgotten by their
 * owners; this cap is the backstop: the least recently registered are dropped first. 2,048 leaves room
 * for ~500 signed-in users with four live tokens each (two access tokens, a refresh token, an id token).
 */
const rotatingSecrets = new Set<string>();
const MAX_ROTATING_SECRETS = 2048;

export const REDACTED = "[REDACTED]";

export interface RegisterSecretOptions {
  /**
   * A token that is replaced over time (access, refresh or id token). Rotating secrets are held in a
   * bounded set, oldest dropped first; their owners should also `forgetSecret` the one a refresh replaces.
   * @default false
   */
  rotating?: boolean;
}

/** Remember a value (a password, a raw token) so that every later `redact()` removes it. */
export function registerSecret(secret: string | undefined | null, options: RegisterSecretOptions = {}): void {
  // Very short values would redact ordinary words; they are still caught by the patterns below.
  if (!secret || secret.length < 6) return;
  if (knownSecrets.has(secret)) return;
  // A token registered as rotating by its provider stays rotating when a lower layer registers it again.
  if (!options.rotating && !rotatingSecrets.has(secret)) {
    knownSecrets.add(secret);
    return;
  }
  // Re-registering moves it to the young end: a token still in use is never the one dropped.
  rotatingSecrets.delete(secret);
  rotatingSecrets.add(secret);
  if (rotatingSecrets.size > MAX_ROTATING_SECRETS) {
    const oldest = rotatingSecrets.values().next().value;
    if (oldest !== undefined) rotatingSecrets.delete(oldest);
  }
}

/**
 * Registers `secret` until the returned release is called (by every holder: holds are counted). For a
 * value whose user has an end, such as a token provider's password, disposed with the provider.
 */
export function holdSecret(secret: string | undefined | null): () => void {
  if (!secret || secret.length < 6) return () => {};
  heldSecrets.set(secret, (heldSecrets.get(secret) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (heldSecrets.get(secret) ?? 1) - 1;
    if (left > 0) heldSecrets.set(secret, left);
    else heldSecrets.delete(secret);
  };
}

export function forgetSecret(secret: string | undefined | null): void {
  if (!secret) return;
  knownSecrets.delete(secret);
  rotatingSecrets.delete(secret);
}

/** How many secrets `redact` holds: lets tests and metrics check that the set stays bounded. */
export function registeredSecretCount(): {
  permanent: number;
  held: number;
  rotating: number;
  rotatingLimit: number;
} {
  return {
    permanent: knownSecrets.size,
    held: heldSecrets.size,
    rotating: rotatingSecrets.size,
    rotatingLimit: MAX_ROTATING_SECRETS,
  };
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
  for (const secret of [...knownSecrets, ...heldSecrets.keys(), ...rotatingSecrets, ...extraSecrets]) {
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
