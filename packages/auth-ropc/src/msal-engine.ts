import {
  type AccountInfo,
  AuthError,
  type AuthenticationResult,
  ClientConfigurationError,
  type ICachePlugin,
  type INetworkModule,
  InteractionRequiredAuthError,
  LogLevel,
  type NetworkRequestOptions,
  type NetworkResponse,
  PublicClientApplication,
  ServerError,
} from "@azure/msal-node";
import { forgetSecret, type Logger, M365MailError, type Resource, registerSecret } from "@m365-mail/core";
import { type AadstsHintContext, describeAadsts } from "./aadsts.js";
import type { TokenCache } from "./cache/token-cache.js";
import { type GrantedToken, RefreshRejectedError, type TokenEngine } from "./engine.js";
import { encodeAssertion, type SamlAssertion } from "./federation/ws-trust.js";
import { describeUrl, type HttpClient, SOURCE } from "./http-client.js";
import { buildTokenRequest } from "./http-engine.js";
import { oauthErrorOf, readTokenResponse } from "./token-response.js";

// msal rethrows AuthErrors from the network client unchanged, but wraps anything else into a generic
// "network_error". So failures travel as an AuthError and the M365MailError rides beside it here.
// (AuthError resets its prototype in its constructor, so a subclass + instanceof would not work.)
const carried = new WeakMap<object, M365MailError>();

function carry(error: M365MailError): AuthError {
  const wrapper = new AuthError("m365_mail_request_failed", error.message);
  carried.set(wrapper, error);
  return wrapper;
}

/**
 * msal's network client on our HTTP client: one timeout on every request, extra CAs, proxy.
 * Token-endpoint failures (AADSTS errors, 429, 5xx, HTML, malformed or token-less 200s) are turned
 * into M365MailErrors here. msal never sees a 429/5xx answer, so its throttling cache (which would
 * block identical requests for Retry-After, 60 s by default) never engages: retries stay ours.
 */
export function msalNetworkClient(http: HttpClient, context: AadstsHintContext): INetworkModule {
  // One network client per msal application, that is per user: a new refresh or id token supersedes
  // the last one, which is then dropped from the redactor (Entra rotates refresh tokens on every use).
  const latest: { refresh?: string; id?: string } = {};
  const rotate = (kind: "refresh" | "id", value: string | undefined) => {
    if (!value) return;
    if (latest[kind] && latest[kind] !== value) forgetSecret(latest[kind]);
    latest[kind] = value;
    registerSecret(value, { rotating: true });
  };
  const send = async <T>(
    method: "GET" | "POST",
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> => {
    let res: Awaited<ReturnType<HttpClient["send"]>>;
    try {
      res = await http.send({ method, url, headers: options?.headers ?? {}, body: options?.body });
    } catch (error) {
      throw error instanceof M365MailError ? carry(error) : error;
    }
    const where = `${method} ${describeUrl(url)}`;
    if (method === "POST") {
      try {
        const body = readTokenResponse(res, where, context);
        registerSecret(body.access_token, { rotating: true });
        rotate("refresh", body.refresh_token);
        rotate("id", body.id_token);
        return { status: res.status, headers: res.headers, body: body as T };
      } catch (error) {
        throw error instanceof M365MailError ? carry(error) : error;
      }
    }
    try {
      return { status: res.status, headers: res.headers, body: JSON.parse(res.text) as T };
    } catch (error) {
      throw carry(
        new M365MailError(
          "INVALID_RESPONSE",
          `${where} answered ${res.status} with a body that is not JSON`,
          {
            source: SOURCE,
            status: res.status,
            cause: error,
            hint: "Check authorityHost and the proxy option.",
          },
        ),
      );
    }
  };
  return {
    sendGetRequestAsync: (url, options) => send("GET", url, options),
    sendPostRequestAsync: (url, options) => send("POST", url, options),
  };
}

/** Any msal error as an M365MailError (keeping the original as cause). */
export function fromMsalError(error: unknown, context: AadstsHintContext): M365MailError {
  if (error instanceof M365MailError) return error;
  if (error && typeof error === "object") {
    const inner = carried.get(error);
    if (inner) return inner;
  }
  if (error instanceof ServerError || error instanceof InteractionRequiredAuthError) {
    const aadsts =
      typeof (error as { errorNo?: unknown }).errorNo !== "undefined"
        ? Number((error as { errorNo?: unknown }).errorNo)
        : undefined;
    const entry = describeAadsts(Number.isFinite(aadsts) ? aadsts : undefined, error.errorCode);
    if (entry) {
      return new M365MailError(
        entry.code,
        `sign-in of ${context.username ?? "the user"} refused: ${entry.title} (msal ${error.errorCode})`,
        {
          source: SOURCE,
          cause: error,
          serverCode: aadsts ? `AADSTS${aadsts}` : error.errorCode,
          hint: entry.hint(context),
        },
      );
    }
  }
  if (
    error instanceof ClientConfigurationError ||
    (error instanceof AuthError && /endpoint|authority/i.test(error.errorCode))
  ) {
    return new M365MailError("CONFIG_INVALID", `msal rejected the configuration (${error.errorCode})`, {
      source: SOURCE,
      cause: error,
      hint: "Check authorityHost, cloud, tenantId and clientId.",
    });
  }
  const code = error instanceof AuthError ? error.errorCode : error instanceof Error ? error.name : "unknown";
  return new M365MailError("AUTH_FAILED", `msal failed (${code})`, {
    source: SOURCE,
    cause: error,
    retryable: false,
    hint: "Run `m365-mail doctor` to check the set-up; the cause holds msal's error.",
  });
}

/**
 * The tokens inside msal's serialized cache (access, refresh and id tokens), each on its own: the blob
 * itself is no string to look for, it changes on every refresh and would only grow the redactor's set.
 */
function msalCacheSecrets(serialized: string): Set<string> {
  const found = new Set<string>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(serialized);
  } catch {
    return found;
  }
  for (const section of ["AccessToken", "RefreshToken", "IdToken"]) {
    const entries = (parsed as Record<string, unknown> | null)?.[section];
    if (!entries || typeof entries !== "object") continue;
    for (const entry of Object.values(entries as Record<string, { secret?: unknown }>)) {
      if (typeof entry?.secret === "string") found.add(entry.secret);
    }
  }
  return found;
}

/** msal's serialized cache is a JSON object; anything else (a sealed value, a damaged one) is not. */
function readableMsalCache(value: unknown): value is string {
  if (typeof value !== "string") return false;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed);
  } catch {
    return false;
  }
}

/**
 * msal's whole cache for one user under one key of our TokenCache (msal writes one blob per app). A
 * value msal cannot read (not its JSON: written by something else, or damaged) is a miss, with a warning:
 * the sign-in goes on as if nothing were cached, and its result replaces the value.
 */
export function msalCachePlugin(cache: TokenCache, key: string, logger?: Logger): ICachePlugin {
  // The secrets of the last blob read. msal reads the blob again before saving a refresh, so a blob
  // still holding the refresh token just superseded is read after the network client forgot it: what
  // a newer blob no longer holds is forgotten here, which keeps the redactor's set from growing.
  let held = new Set<string>();
  return {
    async beforeCacheAccess(context) {
      const entry = await cache.get(key);
      if (!entry) return;
      if (!readableMsalCache(entry.value)) {
        logger?.warn(
          `token cache entry ${key} is not msal's cache (written by something else, or damaged): read as absent, the next sign-in replaces it`,
        );
        return;
      }
      const secrets = msalCacheSecrets(entry.value);
      for (const old of held) if (!secrets.has(old)) forgetSecret(old);
      for (const secret of secrets) registerSecret(secret, { rotating: true });
      held = secrets;
      try {
        context.tokenCache.deserialize(entry.value);
      } catch (error) {
        logger?.warn(
          `token cache entry ${key} could not be loaded into msal (${error instanceof Error ? error.name : "error"}): read as absent, the next sign-in replaces it`,
        );
      }
    },
    async afterCacheAccess(context) {
      if (context.cacheHasChanged) await cache.set(key, { value: context.tokenCache.serialize() });
    },
  };
}

export interface MsalEngineOptions {
  authorityHost: string;
  tenantId: string;
  clientId: string;
  username: string;
  /** True for a host msal does not know (the emulator, a private endpoint): no instance discovery. */
  customAuthority: boolean;
  http: HttpClient;
  /** Persist through msal's cache plugin; absent: msal's own memory cache. */
  cache: TokenCache | undefined;
  keyPrefix: string;
  context: AadstsHintContext;
  logger: Logger;
}

/** What msal needs to skip Microsoft's instance discovery for a host it does not know. */
export function authorityMetadataFor(authorityHost: string, tenantId: string): Record<string, unknown> {
  const authority = `${authorityHost}/${tenantId}`;
  return {
    token_endpoint: `${authority}/oauth2/v2.0/token`,
    authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
    end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
    device_authorization_endpoint: `${authority}/oauth2/v2.0/devicecode`,
    issuer: `${authority}/v2.0`,
    jwks_uri: `${authority}/discovery/v2.0/keys`,
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
  };
}

export function createMsalApplication(options: MsalEngineOptions): PublicClientApplication {
  const host = new URL(options.authorityHost).host;
  return new PublicClientApplication({
    auth: {
      clientId: options.clientId,
      authority: `${options.authorityHost}/${options.tenantId}`,
      ...(options.customAuthority
        ? {
            knownAuthorities: [host],
            authorityMetadata: JSON.stringify(authorityMetadataFor(options.authorityHost, options.tenantId)),
          }
        : {}),
    },
    ...(options.cache
      ? {
          cache: { cachePlugin: msalCachePlugin(options.cache, `${options.keyPrefix}:msal`, options.logger) },
        }
      : {}),
    system: {
      networkClient: msalNetworkClient(options.http, options.context),
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message, containsPii) => {
          if (containsPii) return;
          if (level === LogLevel.Error) options.logger.error(`msal: ${message}`);
          else options.logger.warn(`msal: ${message}`);
        },
      },
    },
  });
}

function toGranted(
  result: AuthenticationResult | null,
  requested: readonly string[],
): GrantedToken & { fromCache: boolean } {
  // msal resolves a 200 without access_token as "success" with an empty token: never hand that out.
  if (!result?.accessToken) {
    throw new M365MailError("INVALID_RESPONSE", "msal returned no access token", {
      source: SOURCE,
      hint: "Entra ID sent an incomplete answer; this is retried. If it persists, check authorityHost and the proxy option.",
    });
  }
  registerSecret(result.accessToken, { rotating: true });
  registerSecret(result.idToken, { rotating: true });
  return {
    token: result.accessToken,
    expiresAt: result.expiresOn ?? new Date(Date.now() + 3600_000),
    scopes: result.scopes.length > 0 ? result.scopes : [...requested],
    fromCache: result.fromCache,
  };
}

/** Sign-in scopes msal adds and stores with access tokens; they name no resource. */
const OIDC_SCOPES: ReadonlySet<string> = new Set(["openid", "profile", "email", "offline_access"]);

/** `acquireTokenByUsernamePassword` for the first grant, `acquireTokenSilent` (cache, refresh token) after. */
export function msalEngine(
  options: MsalEngineOptions,
): TokenEngine & { readonly application: PublicClientApplication } {
  const application = createMsalApplication(options);
  const wanted = options.username.toLowerCase();
  let account: AccountInfo | undefined;

  const findAccount = async (): Promise<AccountInfo | undefined> => {
    if (account) return account;
    const accounts = await application.getTokenCache().getAllAccounts();
    account = accounts.find((a) => a.username.toLowerCase() === wanted);
    return account;
  };

  const silentOnce = async (scopes: readonly string[], forceRefresh: boolean, current: AccountInfo) => {
    try {
      return toGranted(
        await application.acquireTokenSilent({ account: current, scopes: [...scopes], forceRefresh }),
        scopes,
      );
    } catch (error) {
      if (error instanceof M365MailError) throw error;
      const mapped = fromMsalError(error, options.context);
      const oauth = oauthErrorOf(mapped);
      // msal's own InteractionRequiredAuthError ("no_tokens_found", "refresh_token_expired", ...) and
      // an invalid_grant from Entra ID both mean: the refresh token is no good, sign in again.
      const ownInteraction = error instanceof InteractionRequiredAuthError && !carried.has(error);
      if (ownInteraction || oauth === "invalid_grant" || oauth === "interaction_required") {
        throw new RefreshRejectedError(mapped);
      }
      throw mapped;
    }
  };

  /**
   * msal looks cached access tokens up by the requested scopes, and `{resource}/.default` never matches
   * the granted list it stored with the token. For a `.default` request this finds the granted scopes
   * of a cached access token of this resource still valid past `minValidUntil` (and past msal's own
   * 5-minute renewal window), so that asking with them is served from msal's cache without a request.
   * Undefined otherwise: the caller then asks with `.default` (a refresh keeps `.default`'s meaning).
   */
  const cachedGrantedScopes = async (
    scopes: readonly string[],
    current: AccountInfo,
    minValidUntil: number,
  ): Promise<string[] | undefined> => {
    if (scopes.length !== 1 || !scopes[0]!.toLowerCase().endsWith("/.default")) return undefined;
    const prefix = scopes[0]!.slice(0, -".default".length).toLowerCase();
    const cache = application.getTokenCache();
    // Loads the persisted cache (cache plugin) into msal's memory first.
    await cache.getAllAccounts();
    let parsed: { AccessToken?: Record<string, Record<string, unknown>> };
    try {
      parsed = JSON.parse(cache.serialize());
    } catch {
      return undefined;
    }
    const validUntil = Math.max(minValidUntil, Date.now() + 310_000);
    for (const entry of Object.values(parsed.AccessToken ?? {})) {
      if (entry.home_account_id !== current.homeAccountId || entry.client_id !== options.clientId) continue;
      if (!(Number(entry.expires_on) * 1000 > validUntil)) continue;
      const target = String(entry.target ?? "")
        .split(" ")
        .filter((t) => t && !OIDC_SCOPES.has(t.toLowerCase()));
      if (target.length > 0 && target.every((t) => t.toLowerCase().startsWith(prefix))) return target;
    }
    return undefined;
  };

  return {
    application,
    async silent(_resource: Resource, scopes, force, minValidUntil) {
      const current = await findAccount();
      if (!current) return undefined;
      if (!force) {
        const granted = await cachedGrantedScopes(scopes, current, minValidUntil).catch(() => undefined);
        if (granted) {
          const cached = await silentOnce(granted, false, current);
          if (cached.fromCache) return cached;
        }
      }
      const first = await silentOnce(scopes, force, current);
      // msal serves cached tokens until 5 min before expiry; our margin may be longer. Only a token
      // from msal's cache is worth a second, forced try: a fresh one is the best Entra ID gives.
      if (!force && first.fromCache && first.expiresAt.getTime() <= minValidUntil) {
        return silentOnce(scopes, true, current);
      }
      return first;
    },
    async passwordGrant(_resource, scopes, password) {
      let result: AuthenticationResult | null;
      try {
        result = await application.acquireTokenByUsernamePassword({
          scopes: [...scopes],
          username: options.username,
          password,
        });
      } catch (error) {
        throw fromMsalError(error, options.context);
      }
      const granted = toGranted(result, scopes);
      if (result?.account) account = result.account;
      return granted;
    },
    async assertionGrant(_resource, scopes, assertion: SamlAssertion) {
      // msal-node has no SAML bearer grant: post it ourselves, then hand the refresh token to msal
      // (acquireTokenByRefreshToken), which stores account and tokens so that acquireTokenSilent
      // serves every later call as for any other user. The password never reaches Entra ID.
      const req = buildTokenRequest({
        authority: `${options.authorityHost}/${options.tenantId}`,
        clientId: options.clientId,
        protocol: "v2",
        grant: { type: assertion.grantType, assertion: encodeAssertion(assertion) },
        scopes,
        resourceUri: "",
      });
      const res = await options.http.send({
        method: "POST",
        url: req.url,
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: req.body,
      });
      const body = readTokenResponse(res, `POST ${describeUrl(req.url)}`, {
        ...options.context,
        grant: "saml-bearer",
      });
      registerSecret(body.access_token, { rotating: true });
      registerSecret(body.refresh_token, { rotating: true });
      registerSecret(body.id_token, { rotating: true });
      if (typeof body.refresh_token !== "string" || !body.refresh_token) {
        throw new M365MailError(
          "INVALID_RESPONSE",
          "the SAML bearer grant answered without a refresh token",
          {
            source: SOURCE,
            hint: 'Entra ID sent an incomplete answer; this is retried. If it persists, use engine: "http".',
          },
        );
      }
      let result: AuthenticationResult | null;
      try {
        result = await application.acquireTokenByRefreshToken({
          refreshToken: body.refresh_token,
          scopes: [...scopes],
          // No account is cached yet: without this msal would not store the tokens (its ADAL-migration switch).
          forceCache: true,
        });
      } catch (error) {
        throw fromMsalError(error, options.context);
      }
      const granted = toGranted(result, scopes);
      if (result?.account) account = result.account;
      return granted;
    },
    async dropSession() {
      const current = await findAccount().catch(() => undefined);
      account = undefined;
      if (current) await application.getTokenCache().removeAccount(current);
    },
    close: () => Promise.resolve(),
  };
}
