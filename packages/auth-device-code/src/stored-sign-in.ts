import {
  type AadstsHintContext,
  cachedSignIn,
  type GrantedToken,
  type HttpClient,
  oauthErrorOf,
  readTokenResponse,
  type TokenCache,
} from "@m365-mail/auth-ropc";
import { type ErrorCode, type Logger, M365MailError, type Resource } from "@m365-mail/core";
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
  const cached = cachedSignIn(cache, options.keyPrefix);

  return {
    // accessToken, refreshToken, store, forget: the cache layout auth-ropc's http engine uses.
    ...cached,
    /**
     * The refresh-token grant for `resource`. Throws the typed error of a refusal; `refused` tells
     * whether Entra ID refused the refresh token itself (invalid_grant / interaction_required).
     */
    async refresh(
      resource: Resource,
      scopes: readonly string[],
      refreshToken: string,
    ): Promise<GrantedToken> {
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
      return cached.store(
        resource,
        readTokenResponse(res, `POST ${url}`, options.context, SOURCE),
        started,
        scopes,
      );
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
