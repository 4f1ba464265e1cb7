import type { Logger, Resource } from "@m365-mail/core";
import type { AadstsHintContext } from "./aadsts.js";
import type { TokenCache } from "./cache/token-cache.js";
import { cachedSignIn } from "./cached-sign-in.js";
import { type GrantedToken, RefreshRejectedError, type TokenEngine } from "./engine.js";
import { encodeAssertion, type SamlAssertion, type SamlGrantType } from "./federation/ws-trust.js";
import { describeUrl, type HttpClient } from "./http-client.js";
import { oauthErrorOf, readTokenResponse } from "./token-response.js";

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
  const signIn = cachedSignIn(cache, options.keyPrefix);

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
    const context: AadstsHintContext =
      grant.type === "password" || grant.type === "refresh_token"
        ? options.context
        : { ...options.context, grant: "saml-bearer" };
    return signIn.store(resource, readTokenResponse(res, where, context), started, scopes);
  }

  return {
    async silent(resource, scopes, force, minValidUntil) {
      if (!force) {
        const cached = await signIn.accessToken(resource, minValidUntil, scopes);
        if (cached) return cached;
      }
      const refreshToken = await signIn.refreshToken();
      if (!refreshToken) return undefined;
      try {
        return await post(resource, scopes, { type: "refresh_token", refreshToken });
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
    dropSession: () => signIn.forget(),
    close: () => Promise.resolve(),
  };
}
