/**
 * Reads a JWT's claims for diagnostics (doctor, `token` command, scope checks).
 * It does NOT verify the signature: never use it to make a trust decision.
 */
export interface TokenClaims {
  aud?: string;
  scp?: string;
  upn?: string;
  preferred_username?: string;
  unique_name?: string;
  tid?: string;
  oid?: string;
  appid?: string;
  azp?: string;
  iss?: string;
  iat?: number;
  nbf?: number;
  exp?: number;
  [claim: string]: unknown;
}

export function readJwtClaims(token: string): TokenClaims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const json = Buffer.from(parts[1], "base64url").toString("utf8");
    const claims: unknown = JSON.parse(json);
    return claims && typeof claims === "object" ? (claims as TokenClaims) : undefined;
  } catch {
    return undefined;
  }
}

/** A summary safe to print: audience, scopes, user, expiry — never the token itself. */
export interface TokenSummary {
  audience: string | undefined;
  scopes: string[];
  user: string | undefined;
  tenantId: string | undefined;
  appId: string | undefined;
  issuedAt: Date | undefined;
  expiresAt: Date | undefined;
}

export function summarizeToken(token: string): TokenSummary | undefined {
  const c = readJwtClaims(token);
  if (!c) return undefined;
  return {
    audience: c.aud,
    scopes: typeof c.scp === "string" ? c.scp.split(" ").filter(Boolean) : [],
    user: c.upn ?? c.preferred_username ?? c.unique_name,
    tenantId: c.tid,
    appId: c.appid ?? c.azp,
    issuedAt: typeof c.iat === "number" ? new Date(c.iat * 1000) : undefined,
    expiresAt: typeof c.exp === "number" ? new Date(c.exp * 1000) : undefined,
  };
}
