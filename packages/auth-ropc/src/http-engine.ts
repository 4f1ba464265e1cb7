import { forgetSecret, type Logger, type Resource, registerSecret } from "@m365-mail/core";
import type { AadstsHintContext } from "./aadsts.js";
import type { TokenCache } from "./cache/token-cache.js";
import { type GrantedToken, RefreshRejectedError, type TokenEngine } from "./engine.js";
import { encodeAssertion, type SamlAssertion, type SamlGrantType } from "./federation/ws-trust.js";
import { describeUrl, type HttpClient } from "./http-client.js";
import { expiresInSeconds, oauthErrorOf, readTokenResponse, type TokenBody } from "./token-response.js";

/** v2 sends `scope=`; v1 (`/oauth2/token`, 21Vianet) sends `resource=`. */
export type TokenProtocol = "v2" | "v1";

export type Grant =
  | { type: "password"; username: string; password: string }
  | { type: "refresh_token"; refreshToken: string }
  | { type: SamlGrantType; assertion: string };

export interface TokenRequestInput {
  /** `{authorityHost}/{tenant}` */
  authority: string;
  clientId: string;
  protocol: TokenProtocol;
  grant: Grant;
  /** Full-URI scopes (v2). */
  scopes: readonly string[];
  /** Resource URI (v1), e.g. `https://microsoftgraph.chinacloudapi.cn`. */
  resourceUri: string;
}

/** The form POST of a password or refresh-token grant. */
export function buildTokenRequest(input: TokenRequestInput): { url: string; body: string } {
  const form = new URLSearchParams();
  form.set("client_id", input.clientId);
  form.set("grant_type", input.grant.type);
  if (input.grant.type === "password") {
    form.set("username", input.grant.username);
    form.set("password", input.grant.password);
  } else if (input.grant.type === "refresh_token") {
    form.set("refresh_token", input.grant.refreshToken);
  } else {
    form.set("assertion", input.grant.assertion);
  }
  if (input.protocol === "v2") {
    // offline_access brings the refresh token that serves every other resource without the password.
    form.set("scope", [...new Set([...input.scopes, "offline_access"])].join(" "));
    return { url: `${input.authority}/oauth2/v2.0/token`, body: form.toString() };
  }
  // v1 returns a refresh token without offline_access and names the audience with resource=.
  form.set("resource", input.resourceUri);
  return { url: `${input.authority}/oauth2/token`, body: form.toString() };
}

export interface HttpEngineOptions {
  authority: string;
  clientId: string;
  username: string;
  protocol: TokenProtocol;
  resourceUri: (resource: Resource) => string;
  http: HttpClient;
  cache: TokenCache;
  /** Prefix of this user's cache keys. */
  keyPrefix: string;
  context: AadstsHintContext;
  logger: Logger;
}

/** Plain OAuth2 form POSTs; the refresh token lives in the TokenCache and is rotated on every use. */
export function httpEngine(options: HttpEngineOptions): TokenEngine {
  const { cache, http, logger } = options;
  const rtKey = `${options.keyPrefix}:rt`;
  const atKey = (resource: Resource) => `${options.keyPrefix}:at:${resource}`;
  let lastRefreshToken: string | undefined;
  let lastIdToken: string | undefined;

  async function post(resource: Resource, scopes: readonly string[], grant: Grant): Promise<GrantedToken> {
    const req = buildTokenRequest({
      authority: options.authority,
      clientId: options.clientId,
      protocol: options.protocol,
      grant,
      scopes,
      resourceUri: options.resourceUri(resource),
    });
    const started = Date.now();
    const where = `POST ${describeUrl(req.url)}`;
    const kind = grant.type.startsWith("urn:") ? "SAML assertion" : grant.type;
    logger.debug(`${kind} grant for ${resource}`, {
      url: describeUrl(req.url),
    });
    const res = await http.send({
      method: "POST",
      url: req.url,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: req.body,
    });
    const body: TokenBody = readTokenResponse(res, where, options.context);
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
      // Rotation: the old refresh token is superseded; keep the redaction list from growing forever.
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
    async silent(resource, scopes, force, minValidUntil) {
      if (!force) {
        const cached = await cache.get(atKey(resource));
        if (cached?.expiresAt !== undefined && cached.expiresAt > minValidUntil) {
          registerSecret(cached.value, { rotating: true });
          return {
            token: cached.value,
            expiresAt: new Date(cached.expiresAt),
            scopes: cached.scopes ?? [...scopes],
          };
        }
      }
      const rt = await cache.get(rtKey);
      if (!rt) return undefined;
      registerSecret(rt.value, { rotating: true });
      // Another process sharing the cache may have rotated it: the one we knew is superseded.
      if (lastRefreshToken && lastRefreshToken !== rt.value) forgetSecret(lastRefreshToken);
      lastRefreshToken = rt.value;
      try {
        return await post(resource, scopes, { type: "refresh_token", refreshToken: rt.value });
      } catch (error) {
        const oauth = oauthErrorOf(error);
        if (oauth === "invalid_grant" || oauth === "interaction_required")
          throw new RefreshRejectedError(error as Error);
        throw error;
      }
    },
    passwordGrant(resource, scopes, password) {
      return post(resource, scopes, { type: "password", username: options.username, password });
    },
    assertionGrant(resource, scopes, assertion: SamlAssertion) {
      return post(resource, scopes, { type: assertion.grantType, assertion: encodeAssertion(assertion) });
    },
    async dropSession() {
      await cache.delete(rtKey);
      await Promise.all([cache.delete(atKey("graph")), cache.delete(atKey("outlook"))]);
    },
    close: () => Promise.resolve(),
  };
}
