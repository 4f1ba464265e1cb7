import { forgetSecret, type Resource, registerSecret } from "@m365-mail/core";
import type { TokenCache } from "./cache/token-cache.js";
import type { GrantedToken } from "./engine.js";
import { expiresInSeconds, type TokenBody } from "./token-response.js";

/**
 * One user's sign-in as the token cache keeps it: the refresh token (`{prefix}:rt`) and one access token
 * per resource (`{prefix}:at:graph`, `{prefix}:at:outlook`). The http engine and auth-device-code share
 * it, so both keep the same layout. Every token read or stored goes into the redactor's bounded set
 * (rotating), and a superseded refresh or id token is forgotten there, so the set does not grow.
 */
export function cachedSignIn(cache: TokenCache, keyPrefix: string) {
  const rtKey = `${keyPrefix}:rt`;
  const atKey = (resource: Resource) => `${keyPrefix}:at:${resource}`;
  let lastRefreshToken: string | undefined;
  let lastIdToken: string | undefined;
  const supersede = (refreshToken: string) => {
    if (lastRefreshToken && lastRefreshToken !== refreshToken) forgetSecret(lastRefreshToken);
    lastRefreshToken = refreshToken;
  };

  return {
    /** A cached access token for `resource` still valid at `minValidUntil` (`scopes` if the cache has none). */
    async accessToken(
      resource: Resource,
      minValidUntil: number,
      scopes: readonly string[] = [],
    ): Promise<GrantedToken | undefined> {
      const cached = await cache.get(atKey(resource));
      if (cached?.expiresAt === undefined || cached.expiresAt <= minValidUntil) return undefined;
      registerSecret(cached.value, { rotating: true });
      return {
        token: cached.value,
        expiresAt: new Date(cached.expiresAt),
        scopes: cached.scopes ?? [...scopes],
      };
    },

    /** The stored refresh token; another process sharing the cache may have rotated the one we knew. */
    async refreshToken(): Promise<string | undefined> {
      const rt = await cache.get(rtKey);
      if (!rt) return undefined;
      registerSecret(rt.value, { rotating: true });
      supersede(rt.value);
      return rt.value;
    },

    /** Stores a token response for `resource`: its access token, and its refresh token when it rotated. */
    async store(
      resource: Resource,
      body: TokenBody,
      started: number,
      scopes: readonly string[],
    ): Promise<GrantedToken> {
      registerSecret(body.access_token, { rotating: true });
      registerSecret(body.refresh_token, { rotating: true });
      // The id token is never used again: only the newest is kept for redaction.
      if (lastIdToken !== body.id_token) forgetSecret(lastIdToken);
      registerSecret(body.id_token, { rotating: true });
      lastIdToken = typeof body.id_token === "string" ? body.id_token : undefined;
      const granted: GrantedToken = {
        token: body.access_token,
        expiresAt: new Date(started + expiresInSeconds(body) * 1000),
        scopes:
          typeof body.scope === "string" && body.scope ? body.scope.split(" ").filter(Boolean) : [...scopes],
      };
      if (typeof body.refresh_token === "string" && body.refresh_token) {
        supersede(body.refresh_token);
        await cache.set(rtKey, { value: body.refresh_token });
      }
      await cache.set(atKey(resource), {
        value: granted.token,
        expiresAt: granted.expiresAt.getTime(),
        scopes: granted.scopes,
      });
      return granted;
    },

    /** Drops the refresh token and both access tokens (a new sign-in starts from nothing). */
    async forget(): Promise<void> {
      await cache.delete(rtKey);
      await Promise.all([cache.delete(atKey("graph")), cache.delete(atKey("outlook"))]);
    },
  };
}

export type CachedSignIn = ReturnType<typeof cachedSignIn>;
