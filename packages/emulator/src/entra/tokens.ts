import { createHash, createPublicKey, randomBytes, randomUUID, sign, verify } from "node:crypto";
import type { Resource } from "@m365-mail/core";
import type { IssuedTokenClaims, TokenCheck } from "../context.js";
import type { DirectoryApp, DirectoryTenant, DirectoryUser } from "../directory.js";
import { type DirectoryStore, userObjectId } from "../directory-store.js";
import type { IssuedCertificate } from "../tls.js";

export interface SigningKey extends IssuedCertificate {
  kid: string;
  x5t: string;
}

export interface RefreshTokenRecord {
  upn: string;
  clientId: string;
  tenantId: string;
  issuedAt: number;
  lastUsedAt: number;
  revoked: boolean;
  /** Issued to a sign-in that did MFA (device code): refresh grants satisfy an MFA policy. */
  mfa?: boolean;
}

export interface IssueAccessTokenInput {
  tenant: DirectoryTenant;
  user: DirectoryUser;
  app: DirectoryApp;
  resource: Resource;
  aud: string;
  scp: string[];
  /** The sign-in did MFA (device code): `amr` gets "mfa". */
  mfa?: boolean;
}

/** Default refresh-token idle lifetime: 90 days, as Microsoft documents. */
export const REFRESH_TOKEN_IDLE_SECONDS = 90 * 86_400;

/**
 * Issues and checks the emulator's tokens: RS256 access tokens shaped like Microsoft's v1 access tokens
 * (what Graph and Exchange receive), v2 id tokens, opaque refresh tokens kept server-side.
 */
export class TokenService {
  private readonly refreshTokens = new Map<string, RefreshTokenRecord>();
  /** uti → issue time in ms, so that a revocation in the same second as an issue is exact. */
  private readonly issuedAt = new Map<string, number>();
  /** upn (lower case) → tokens issued before this time (ms) are revoked. */
  private readonly validFrom = new Map<string, number>();
  refreshIdleSeconds = REFRESH_TOKEN_IDLE_SECONDS;

  constructor(
    private readonly signing: SigningKey,
    private readonly store: DirectoryStore,
    /** The emulator's origin; known only once the server listens. */
    private readonly origin: () => string,
  ) {}

  issueAccessToken(input: IssueAccessTokenInput): {
    token: string;
    expiresIn: number;
    claims: IssuedTokenClaims;
  } {
    const now = Date.now();
    const iat = Math.floor(now / 1000);
    const lifetime = Math.max(1, Math.round(this.store.tokenLifetimeSeconds()));
    const oid = userObjectId(input.user);
    const uti = randomBytes(16).toString("base64url").slice(0, 22);
    this.rememberIssue(uti, now);
    const claims: IssuedTokenClaims = {
      aud: input.aud,
      iss: `https://sts.windows.net/${input.tenant.id}/`,
      iat,
      nbf: iat,
      exp: iat + lifetime,
      acct: 0,
      acr: "1",
      aio: randomBytes(24).toString("base64url"),
      amr: input.mfa ? ["pwd", "mfa"] : ["pwd"],
      app_displayname: input.app.displayName,
      appid: input.app.clientId,
      appidacr: "0",
      idtyp: "user",
      ipaddr: "127.0.0.1",
      name: input.user.displayName,
      oid,
      scp: input.scp.join(" "),
      sub: pairwiseSubject(oid, input.app.clientId),
      tid: input.tenant.id,
      unique_name: input.user.upn,
      upn: input.user.upn,
      uti,
      ver: "1.0",
    };
    return { token: this.sign(claims), expiresIn: lifetime, claims };
  }

  issueIdToken(tenant: DirectoryTenant, user: DirectoryUser, app: DirectoryApp, withEmail: boolean): string {
    const iat = Math.floor(Date.now() / 1000);
    const oid = userObjectId(user);
    return this.sign({
      aud: app.clientId,
      iss: `${this.origin()}/${tenant.id}/v2.0`,
      iat,
      nbf: iat,
      exp: iat + 3600,
      ...(withEmail ? { email: user.upn } : {}),
      name: user.displayName,
      oid,
      preferred_username: user.upn,
      rh: "0.emulator",
      sub: pairwiseSubject(oid, app.clientId),
      tid: tenant.id,
      uti: randomBytes(16).toString("base64url").slice(0, 22),
      ver: "2.0",
    });
  }

  /** `client_info`: base64url JSON of uid and utid, which msal uses as the account's home id. */
  clientInfo(tenant: DirectoryTenant, user: DirectoryUser): string {
    return Buffer.from(JSON.stringify({ uid: userObjectId(user), utid: tenant.id })).toString("base64url");
  }

  createRefreshToken(upn: string, clientId: string, tenantId: string, mfa = false): string {
    // Opaque, like Microsoft's ("0.A…"): clients must not parse refresh tokens.
    const token = `0.A${randomBytes(96).toString("base64url")}`;
    const now = Date.now();
    this.refreshTokens.set(token, {
      upn,
      clientId,
      tenantId,
      issuedAt: now,
      lastUsedAt: now,
      revoked: false,
      ...(mfa ? { mfa } : {}),
    });
    return token;
  }

  findRefreshToken(token: string): RefreshTokenRecord | undefined {
    return this.refreshTokens.get(token);
  }

  isIdleExpired(record: RefreshTokenRecord, now = Date.now()): boolean {
    return now - record.lastUsedAt > this.refreshIdleSeconds * 1000;
  }

  /** Revokes every refresh token of the user and every access token issued to them so far. */
  revoke(upn: string): number {
    const key = upn.toLowerCase();
    this.validFrom.set(key, Date.now());
    let count = 0;
    for (const record of this.refreshTokens.values()) {
      if (record.upn.toLowerCase() === key && !record.revoked) {
        record.revoked = true;
        count += 1;
      }
    }
    return count;
  }

  /** Makes the user's refresh tokens idle-expired (AADSTS700082) without waiting 90 days. */
  expireRefreshTokens(upn: string): number {
    const key = upn.toLowerCase();
    let count = 0;
    for (const record of this.refreshTokens.values()) {
      if (record.upn.toLowerCase() === key) {
        record.lastUsedAt = Date.now() - (this.refreshIdleSeconds + 1) * 1000;
        count += 1;
      }
    }
    return count;
  }

  /** Signature, expiry, revocation and user state of an access token this emulator issued. */
  verifyAccessToken(token: string): TokenCheck {
    const parts = token.split(".");
    if (parts.length !== 3) return { ok: false, reason: "malformed", message: "the token is not a JWT" };
    let header: Record<string, unknown>;
    let claims: IssuedTokenClaims;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      return { ok: false, reason: "malformed", message: "the token's header or claims are not JSON" };
    }
    if (header.alg !== "RS256" || typeof claims !== "object" || claims === null) {
      return { ok: false, reason: "malformed", message: "the token is not an RS256 JWT" };
    }
    const valid = verify(
      "sha256",
      Buffer.from(`${parts[0]}.${parts[1]}`),
      createPublicKey(this.signing.certPem),
      Buffer.from(parts[2]!, "base64url"),
    );
    if (!valid || header.kid !== this.signing.kid) {
      return { ok: false, reason: "bad_signature", message: "the token was not signed by this emulator" };
    }
    if (typeof claims.exp !== "number" || claims.exp * 1000 <= Date.now()) {
      return {
        ok: false,
        reason: "expired",
        message: `the token expired at ${new Date((claims.exp ?? 0) * 1000).toISOString()}`,
      };
    }
    const found = typeof claims.upn === "string" ? this.store.findUser(claims.upn) : undefined;
    if (!found)
      return { ok: false, reason: "unknown_user", message: `no user ${String(claims.upn)} in the directory` };
    const validFrom = this.validFrom.get(found.user.upn.toLowerCase());
    const issued = this.issuedAt.get(String(claims.uti)) ?? claims.iat * 1000;
    if (validFrom !== undefined && issued < validFrom) {
      return { ok: false, reason: "revoked", message: `the tokens of ${found.user.upn} were revoked` };
    }
    if (found.user.disabled) {
      return { ok: false, reason: "disabled_user", message: `the account ${found.user.upn} is disabled` };
    }
    return { ok: true, claims, user: found.user };
  }

  jwks(tenantId: string): { keys: Record<string, unknown>[] } {
    const jwk = createPublicKey(this.signing.certPem).export({ format: "jwk" });
    return {
      keys: [
        {
          kty: "RSA",
          use: "sig",
          kid: this.signing.kid,
          x5t: this.signing.x5t,
          n: jwk.n,
          e: jwk.e,
          x5c: [this.signing.der.toString("base64")],
          issuer: `${this.origin()}/${tenantId}/v2.0`,
        },
      ],
    };
  }

  private sign(claims: Record<string, unknown>): string {
    const header = { typ: "JWT", alg: "RS256", x5t: this.signing.x5t, kid: this.signing.kid };
    const input = `${b64json(header)}.${b64json(claims)}`;
    const signature = sign("sha256", Buffer.from(input), this.signing.keyPem).toString("base64url");
    return `${input}.${signature}`;
  }

  private rememberIssue(uti: string, at: number): void {
    this.issuedAt.set(uti, at);
    // Bounded: old entries fall back to `iat` (second precision), which is fine for old tokens.
    if (this.issuedAt.size > 50_000) {
      const oldest = this.issuedAt.keys().next().value;
      if (oldest !== undefined) this.issuedAt.delete(oldest);
    }
  }
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Microsoft's `sub` is pairwise: the same user has a different subject per app. */
function pairwiseSubject(oid: string, clientId: string): string {
  return createHash("sha256").update(`${oid}:${clientId}`).digest("base64url");
}

export function newCorrelationId(): string {
  return randomUUID();
}
