import {
  type AadstsHintContext,
  expiresInSeconds,
  type GrantedToken,
  type HttpClient,
  oauthErrorOf,
  readTokenResponse,
  type TokenBody,
  type TokenCache,
} from "@m365-mail/auth-ropc";
import {
  type ErrorCode,
  forgetSecret,
  type Logger,
  M365MailError,
  type Resource,
  registerSecret,
} from "@m365-mail/core";
import { SOURCE } from "./errors.js";

export interface StoredSignInOptions {
  /** `{authorityHost}/{tenant}` */
  authority: string;
  clientId: string;
  http: HttpClient;
  cache: TokenCache;
  /** Prefix of this sign-in's cache keys (host, tenant, app, user). */
  keyPrefix: string;
  context: AadstsHintContext;
  logger: Logger;
}

/**
 * The sign-in as the cache keeps it: the refresh token (`…:rt`) and one access token per resource
 * (`…:at:graph`, `…:at:outlook`), the layout auth-ropc's http engine uses, under a prefix of its own.
 * Refresh tokens are replaced on every use; a refused one is remembered so that it is not sent again.
 */
export function storedSignIn(options: StoredSignInOptions) {
  const { cache, http, logger } = options;
  const rtKey = `${options.keyPrefix}:rt`;
  const atKey = (resource: Resource) => `${options.keyPrefix}:at:${resource}`;
  let lastRefreshToken: string | undefined;

  async function store(resource: Resource, body: TokenBody, started: number, scopes: readonly string[]) {
    registerSecret(body.access_token);
    registerSecret(body.refresh_token);
    registerSecret(body.id_token);
    const granted: GrantedToken = {
      token: body.access_token,
      expiresAt: new Date(started + expiresInSeconds(body) * 1000),
      scopes:
        typeof body.scope === "string" && body.scope ? body.scope.split(" ").filter(Boolean) : [...scopes],
    };
    if (typeof body.refresh_token === "string" && body.refresh_token) {
      if (lastRefreshToken && lastRefreshToken !== body.refresh_token) forgetSecret(lastRefreshToken);
      lastRefreshToken = body.refresh_token;
      await cache.set(rtKey, { value: body.refresh_token });
    }
    await cache.set(atKey(resource), {
      value: granted.token,
      expiresAt: granted.expiresAt.getTime(),
      scopes: granted.scopes,
    });
    return granted;
  }

  return {
    store,
    /** An access token from the cache still valid at `minValidUntil`. */
    async cachedAccessToken(resource: Resource, minValidUntil: number): Promise<GrantedToken | undefined> {
      const cached = await cache.get(atKey(resource));
      if (cached?.expiresAt === undefined || cached.expiresAt <= minValidUntil) return undefined;
      registerSecret(cached.value);
      return { token: cached.value, expiresAt: new Date(cached.expiresAt), scopes: cached.scopes ?? [] };
    },
    async refreshToken(): Promise<string | undefined> {
      const rt = await cache.get(rtKey);
      if (rt) registerSecret(rt.value);
      return rt?.value;
    },
    /**
     * The refresh-token grant for `resource`. Throws the typed error of a refusal; `refused` tells
     * whether Entra ID refused the refresh token itself (invalid_grant / interaction_required).
     */
    async refresh(
      resource: Resource,
      scopes: readonly string[],
      refreshToken: string,
    ): Promise<GrantedToken> {
      lastRefreshToken = refreshToken;
      const body = new URLSearchParams({
        client_id: options.clientId,
        grant_type: "refresh_token",
        refresh_token: refreshToken,
        scope: [...new Set([...scopes, "offline_access"])].join(" "),
      }).toString();
      const url = `${options.authority}/oauth2/v2.0/token`;
      logger.debug(`refresh_token grant for ${resource}`);
      const started = Date.now();
      const res = await http.send({
        method: "POST",
        url,
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body,
      });
      return store(resource, readTokenResponse(res, `POST ${url}`, options.context, SOURCE), started, scopes);
    },
    async forget(): Promise<void> {
      await cache.delete(rtKey);
      await Promise.all([cache.delete(atKey("graph")), cache.delete(atKey("outlook"))]);
    },
  };
}

export type StoredSignIn = ReturnType<typeof storedSignIn>;

// Refusals a new interactive sign-in cures. A disabled or locked account, missing consent, … keep
// their own typed error: signing in again would not help.
const NEW_SIGN_IN_CURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "REFRESH_EXPIRED",
  "MFA_REQUIRED",
  "POLICY_BLOCKED",
  "AUTH_FAILED",
]);

/** Entra ID refused the refresh token itself (revoked, idle-expired, unknown, fresh MFA demanded): a person must sign in again. */
export function isRefusedRefreshToken(error: unknown): error is M365MailError {
  const oauth = oauthErrorOf(error);
  return (
    (oauth === "invalid_grant" || oauth === "interaction_required") &&
    error instanceof M365MailError &&
    NEW_SIGN_IN_CURES.has(error.code)
  );
}
