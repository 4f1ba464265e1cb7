import type { PublicClientApplication } from "@azure/msal-node";
import {
  CLOUDS,
  type CloudName,
  type CloudPreset,
  forgetSecret,
  holdSecret,
  type Logger,
  M365MailError,
  type Resource,
  registerSecret,
  resolveCloud,
  type SignInHealthListener,
  type SignInHealthState,
  safeLogger,
  signInHealthTracker,
  type TokenProvider,
} from "@m365-mail/core";
import type { AadstsHintContext } from "./aadsts.js";
import { memoryTokenCache } from "./cache/memory-token-cache.js";
import type { TokenCache } from "./cache/token-cache.js";
import { type GrantedToken, RefreshRejectedError, type TokenEngine } from "./engine.js";
import {
  type FederationMode,
  fallbackRefused,
  federatedSignIn,
  type SignInRoute,
} from "./federation/federated-sign-in.js";
import { createHttpClient, SOURCE } from "./http-client.js";
import { httpEngine } from "./http-engine.js";
import { msalEngine } from "./msal-engine.js";
import { type RetryOptions, withRetry } from "./retry.js";
import { resolveScopes, type ScopeOptions } from "./scopes.js";
import { tokenMemory } from "./token-memory.js";

export type RopcEngine = "msal" | "http";

export interface RopcTokenProviderOptions {
  /** Directory (tenant) ID or a verified domain; never `common` or `consumers`. */
  tenantId: string;
  /** Application (client) ID of the app registration (public client flows on). */
  clientId: string;
  /** UPN of the mailbox owner, e.g. `support@contoso.com`. */
  username: string;
  /** The user's password. Give this or `passwordProvider`. */
  password?: string;
  /** Called whenever a password grant is needed (first sign-in, refresh token refused); the password is not kept. */
  passwordProvider?: () => Promise<string>;
  /** @default "global" */
  cloud?: CloudName | CloudPreset;
  /** Overrides the cloud's Entra host, e.g. the emulator's `https://127.0.0.1:port`. */
  authorityHost?: string;
  /** @default "msal" */
  engine?: RopcEngine;
  /**
   * Federated (AD FS) users. `auto`: user-realm discovery decides — WS-Trust to AD FS for a federated
   * domain, the plain password grant otherwise (and when AD FS cannot be reached). `ws-trust`: always
   * AD FS. `direct`: always the plain password grant (tenants that allow cloud password validation).
   * @default "auto"
   */
  federation?: FederationMode;
  /** Where tokens (and the refresh token) persist. @default memoryTokenCache() */
  cache?: TokenCache;
  /** For every HTTP request, from connect to the last byte. @default 30000 */
  timeoutMs?: number;
  /**
   * HTTP(S) proxy URL for requests to Entra ID only (token endpoint, user-realm discovery). AD FS is
   * usually on the intranet and is reached directly: see `adfsProxy`.
   */
  proxy?: string;
  /**
   * HTTP(S) proxy URL for requests to AD FS (federated users: its MEX document and WS-Trust endpoint).
   * Give the same URL as `proxy` to send those through it too.
   * @default none: AD FS is reached directly
   */
  adfsProxy?: string;
  /** Extra CA certificates (PEM) to trust, on top of Node's roots. */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Refresh this long before expiry (at most half the token's lifetime). @default 300 */
  refreshMarginSeconds?: number;
  /** Permissions per resource. @default { graph: [".default"], outlook: [".default"] } */
  scopes?: ScopeOptions;
  /** Receives redacted log lines. @default no logging */
  logger?: Logger;
  /** Retries of 429, 5xx, timeouts, resets and malformed answers. @default { attempts: 2, baseDelayMs: 500, maxDelayMs: 60000 } */
  retry?: RetryOptions;
}

export interface RopcTokenProvider extends TokenProvider {
  /** Sign-in problems that need a person, once per change of state (see TokenProvider). */
  onHealthChange(listener: SignInHealthListener): () => void;
  healthState(): SignInHealthState;
  readonly name: "auth-ropc";
  readonly cloud: CloudPreset;
  readonly engine: RopcEngine;
  readonly federation: FederationMode;
  /**
   * How the last password sign-in went (realm, AD FS endpoint, grant); after a failure, as far as it
   * got. Undefined before the first.
   */
  signInRoute(): SignInRoute | undefined;
  /** The underlying msal application (engine "msal"): for diagnostics and comparisons only. */
  readonly msalApplication: PublicClientApplication | undefined;
  /** Forgets tokens held in memory and closes connections; the provider cannot be used afterwards. */
  dispose(): Promise<void>;
}

const MICROSOFT_HOSTS = new Set([
  ...Object.values(CLOUDS).map((c) => new URL(c.authorityHost).host),
  "login.partner.microsoftonline.cn",
  "login.microsoft.com",
]);

function invalid(message: string, hint: string): M365MailError {
  return new M365MailError("CONFIG_INVALID", message, { source: SOURCE, hint });
}

function validate(options: RopcTokenProviderOptions): void {
  if (!options || typeof options !== "object") {
    throw invalid("ropcTokenProvider needs options", "Pass { tenantId, clientId, username, password }.");
  }
  if (!options.tenantId)
    throw invalid("tenantId is missing", "Use the Directory (tenant) ID from App registration → Overview.");
  if (/^(common|consumers)$/i.test(options.tenantId)) {
    throw invalid(
      `tenantId "${options.tenantId}" cannot be used with the password grant (AADSTS9001023)`,
      "Set tenantId to the Directory (tenant) ID (or a verified domain), not common or consumers.",
    );
  }
  if (!options.clientId)
    throw invalid("clientId is missing", "Use the Application (client) ID from App registration → Overview.");
  if (!options.username?.includes("@")) {
    throw invalid(
      "username must be the user's UPN (name@domain)",
      "Use the mailbox owner's user principal name, e.g. support@contoso.com.",
    );
  }
  const hasPassword = typeof options.password === "string";
  const hasProvider = typeof options.passwordProvider === "function";
  if (hasPassword === hasProvider) {
    throw invalid(
      "give exactly one of password and passwordProvider",
      "Pass password, or passwordProvider: async () => readSecret().",
    );
  }
  if (options.engine !== undefined && options.engine !== "msal" && options.engine !== "http") {
    throw invalid(`unknown engine "${String(options.engine)}"`, 'Use engine: "msal" (default) or "http".');
  }
  if (
    options.federation !== undefined &&
    options.federation !== "auto" &&
    options.federation !== "ws-trust" &&
    options.federation !== "direct"
  ) {
    throw invalid(
      `unknown federation mode "${String(options.federation)}"`,
      'Use federation: "auto" (default), "ws-trust" or "direct".',
    );
  }
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0))
    throw invalid("timeoutMs must be positive", "Leave it unset for 30000.");
  if (options.refreshMarginSeconds !== undefined && !(options.refreshMarginSeconds >= 0)) {
    throw invalid("refreshMarginSeconds must be zero or more", "Leave it unset for 300.");
  }
}

/**
 * A TokenProvider that signs in as one Microsoft 365 user with the password grant (ROPC): one
 * password grant, then refresh-token grants for every other resource and every renewal.
 */
export function ropcTokenProvider(options: RopcTokenProviderOptions): RopcTokenProvider {
  validate(options);
  const log = safeLogger(options.logger, SOURCE);
  // Held until dispose: a bridge makes a provider for every password a client tries, and a wrong one
  // must not stay in the redaction list for ever.
  const releasePassword = holdSecret(options.password);
  if (options.password !== undefined) {
    if (options.password !== options.password.trim()) {
      log.warn(
        "the password has leading or trailing spaces, which ROPC does not support (expect AADSTS50126)",
      );
    }
  }
  const cloud = resolveCloud(options.cloud);
  const authorityHost = (options.authorityHost ?? cloud.authorityHost).replace(/\/+$/, "");
  let host: string;
  try {
    const url = new URL(authorityHost);
    if (url.protocol !== "https:") throw new Error("not https");
    host = url.host;
  } catch (error) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `authorityHost must be an https:// URL, got "${authorityHost}"`,
      {
        source: SOURCE,
        cause: error,
        hint: "Leave authorityHost unset to use the cloud's Entra host, or pass the emulator's authorityHost.",
      },
    );
  }
  const engineName: RopcEngine = options.engine ?? "msal";
  const marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
  const retry: Required<RetryOptions> = {
    attempts: options.retry?.attempts ?? 2,
    baseDelayMs: options.retry?.baseDelayMs ?? 500,
    maxDelayMs: options.retry?.maxDelayMs ?? 60_000,
  };
  const scopes = resolveScopes(cloud, options.scopes);
  const context: AadstsHintContext = {
    username: options.username,
    tenantId: options.tenantId,
    clientId: options.clientId,
  };
  const keyPrefix =
    `m365-mail:v1:${host}:${options.tenantId}:${options.clientId}:${options.username}`.toLowerCase();
  const http = createHttpClient({
    timeoutMs: options.timeoutMs ?? 30_000,
    proxy: options.proxy,
    ca: options.ca,
  });
  // AD FS has its own proxy setting (none by default): `proxy` is for Entra ID.
  const adfsHttp =
    options.adfsProxy === options.proxy
      ? http
      : createHttpClient({
          timeoutMs: options.timeoutMs ?? 30_000,
          proxy: options.adfsProxy,
          ca: options.ca,
          proxyOption: "adfsProxy",
        });

  let engine: TokenEngine;
  let msalApplication: PublicClientApplication | undefined;
  if (engineName === "msal") {
    if (!cloud.supportsScopeParameter) {
      log.warn(
        `msal only speaks the v2 scope= form; if the ${cloud.name} cloud refuses it, use engine: "http" (resource= form)`,
      );
    }
    const m = msalEngine({
      authorityHost,
      tenantId: options.tenantId,
      clientId: options.clientId,
      username: options.username,
      customAuthority: !MICROSOFT_HOSTS.has(host),
      http,
      cache: options.cache,
      keyPrefix,
      context,
      logger: log,
    });
    engine = m;
    msalApplication = m.application;
  } else {
    engine = httpEngine({
      authority: `${authorityHost}/${options.tenantId}`,
      clientId: options.clientId,
      username: options.username,
      protocol: cloud.supportsScopeParameter ? "v2" : "v1",
      resourceUri: (resource) => (resource === "graph" ? cloud.graphEndpoint : cloud.outlookResource),
      http,
      cache: options.cache ?? memoryTokenCache(),
      keyPrefix,
      context,
      logger: log,
    });
  }

  const federationMode: FederationMode = options.federation ?? "auto";
  const federation = federatedSignIn({
    mode: federationMode,
    authorityHost,
    username: options.username,
    http,
    adfsHttp,
    logger: log,
  });

  // Problems that need a person (MFA, expired password, …) are reported once per change of state.
  const health = signInHealthTracker("auth-ropc", options.username);
  async function password(): Promise<string> {
    if (options.password !== undefined) return options.password;
    let value: string;
    try {
      value = await options.passwordProvider!();
    } catch (error) {
      if (error instanceof M365MailError) throw error;
      throw new M365MailError("CONFIG_INVALID", "passwordProvider failed", {
        source: SOURCE,
        cause: error,
        hint: "Check the secret store passwordProvider reads from.",
      });
    }
    if (typeof value !== "string" || value.length === 0) {
      throw invalid(
        "passwordProvider returned no password",
        "Make passwordProvider resolve to the user's password.",
      );
    }
    registerSecret(value);
    return value;
  }

  async function obtain(resource: Resource, force: boolean): Promise<GrantedToken> {
    const wanted = scopes[resource];
    let granted: GrantedToken | undefined;
    try {
      granted = await withRetry(
        () => engine.silent(resource, wanted, force, Date.now() + marginMs),
        retry,
        log,
        `token refresh for ${resource}`,
      );
    } catch (error) {
      if (!(error instanceof RefreshRejectedError)) throw error;
      const reason = error.reason as M365MailError;
      log.warn(
        `the refresh token was refused (${reason.serverCode ?? reason.code}); signing in with the password again`,
      );
      await engine.dropSession();
    }
    if (granted) return granted;
    const secret = await password();
    const plan = await withRetry(() => federation.prepare(secret), retry, log, "federated sign-in");
    if (plan.kind === "assertion") {
      // (Never "bearer" before a word in a log line: redaction takes it for a Bearer token.)
      log.debug(`SAML assertion grant for ${resource} (assertion from AD FS)`);
      try {
        return await withRetry(
          () => engine.assertionGrant(resource, wanted, plan.assertion),
          retry,
          log,
          `sign-in for ${resource}`,
        );
      } finally {
        // Used once: keep the redaction list from growing by a few KB per sign-in.
        forgetSecret(plan.assertion.xml);
        forgetSecret(Buffer.from(plan.assertion.xml, "utf8").toString("base64url"));
      }
    }
    log.debug(`password grant for ${resource}`);
    try {
      return await withRetry(
        () => engine.passwordGrant(resource, wanted, secret),
        retry,
        log,
        `sign-in for ${resource}`,
      );
    } catch (error) {
      if (plan.fallbackFrom && error instanceof M365MailError)
        throw fallbackRefused(error, plan.fallbackFrom);
      throw error;
    }
  }

  const memory = tokenMemory({
    marginMs,
    health,
    source: SOURCE,
    factory: "ropcTokenProvider",
    // A shared cache (Redis) may lock across processes: inside the lock, engine.silent() finds the
    // token another process just obtained, so only one process signs in.
    grant: (resource, forceRefresh) =>
      options.cache?.withLock
        ? options.cache.withLock(`${keyPrefix}:grant`, () => obtain(resource, forceRefresh))
        : obtain(resource, forceRefresh),
  });

  return {
    kind: "token-provider",
    name: "auth-ropc",
    username: options.username,
    cloud,
    engine: engineName,
    federation: federationMode,
    signInRoute: () => federation.lastRoute(),
    msalApplication,
    onHealthChange: health.onHealthChange,
    healthState: health.healthState,
    getAccessToken: memory.getAccessToken,
    async dispose() {
      if (memory.disposed) return;
      releasePassword();
      memory.dispose();
      await engine.close();
      await http.close();
      if (adfsHttp !== http) await adfsHttp.close();
    },
  };
}
