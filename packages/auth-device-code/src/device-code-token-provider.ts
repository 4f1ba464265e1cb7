import {
  createHttpClient,
  type GrantedToken,
  memoryTokenCache,
  type RetryOptions,
  resolveScopes,
  type ScopeOptions,
  type TokenBody,
  type TokenCache,
  tokenMemory,
  withRetry,
} from "@m365-mail/auth-ropc";
import {
  type AccessToken,
  type CloudName,
  type CloudPreset,
  type Logger,
  type M365MailError,
  type Resource,
  readJwtClaims,
  registerSecret,
  resolveCloud,
  type SignInHealthListener,
  type SignInHealthState,
  safeLogger,
  signInHealthTracker,
  type TokenProvider,
} from "@m365-mail/core";
import { type DeviceCodeInfo, runDeviceCodeFlow } from "./device-code-flow.js";
import { deviceCodeError, invalidOption, loginHint, SOURCE } from "./errors.js";
import { isRefusedRefreshToken, storedSignIn } from "./stored-sign-in.js";

export interface DeviceCodeTokenProviderOptions {
  /** Directory (tenant) ID or a verified domain (`organizations` also works). */
  tenantId: string;
  /** Application (client) ID of the app registration (public client flows on). */
  clientId: string;
  /** UPN of the mailbox owner; the person must sign in as this user. */
  username: string;
  /**
   * Shows the code to a person (print it, send it to a chat). Given: the provider starts the device
   * code flow whenever it has no usable sign-in. Absent: it runs headless from the cache and throws
   * SIGN_IN_REQUIRED / REFRESH_EXPIRED when a person must sign in (`m365-mail login --device-code`).
   */
  onDeviceCode?: (info: DeviceCodeInfo) => void | Promise<void>;
  /** @default "global" */
  cloud?: CloudName | CloudPreset;
  /** Overrides the cloud's Entra host, e.g. the emulator's `https://127.0.0.1:port`. */
  authorityHost?: string;
  /** Where the sign-in persists: auth-ropc's fileTokenCache or redisTokenCache, or your own. @default memoryTokenCache() */
  cache?: TokenCache;
  /** For every HTTP request, from connect to the last byte. @default 30000 */
  timeoutMs?: number;
  /** HTTP(S) proxy URL for requests to Entra ID. */
  proxy?: string;
  /** Extra CA certificates (PEM) to trust, on top of Node's roots. */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Refresh this long before expiry (at most half the token's lifetime). @default 300 */
  refreshMarginSeconds?: number;
  /** Permissions per resource. @default { graph: [".default"], outlook: [".default"] } */
  scopes?: ScopeOptions;
  /** Receives redacted log lines. @default no logging */
  logger?: Logger;
  /** Retries of refresh grants after 429, 5xx, timeouts and resets. @default { attempts: 2, baseDelayMs: 500, maxDelayMs: 60000 } */
  retry?: RetryOptions;
}

export interface DeviceCodeTokenProvider extends TokenProvider {
  /** Sign-in problems that need a person, once per change of state (see TokenProvider). */
  onHealthChange(listener: SignInHealthListener): () => void;
  healthState(): SignInHealthState;
  readonly name: "auth-device-code";
  readonly cloud: CloudPreset;
  /**
   * Runs the device code flow now, even when a sign-in is stored, and stores the new one: what
   * `m365-mail login --device-code` does. Needs `onDeviceCode`. Returns the token of `resource` (default graph).
   */
  signIn(options?: { resource?: Resource; signal?: AbortSignal }): Promise<AccessToken>;
  /** Whether the cache holds a refresh token for this user (no request is made). */
  hasSignIn(): Promise<boolean>;
  /** Forgets the stored sign-in (refresh and access tokens) in the cache and in memory. */
  signOut(): Promise<void>;
  /** Forgets tokens held in memory, stops a running sign-in and closes connections. */
  dispose(): Promise<void>;
}

function validate(options: DeviceCodeTokenProviderOptions): void {
  if (!options || typeof options !== "object") {
    throw invalidOption("deviceCodeTokenProvider needs options", "Pass { tenantId, clientId, username }.");
  }
  if (!options.tenantId)
    throw invalidOption(
      "tenantId is missing",
      "Use the Directory (tenant) ID from App registration → Overview.",
    );
  if (/^consumers$/i.test(options.tenantId)) {
    throw invalidOption(
      "tenantId consumers is for personal Microsoft accounts, which m365-mail does not serve",
      "Set tenantId to the Directory (tenant) ID (or a verified domain).",
    );
  }
  if (!options.clientId)
    throw invalidOption(
      "clientId is missing",
      "Use the Application (client) ID from App registration → Overview.",
    );
  if (!options.username?.includes("@")) {
    throw invalidOption(
      "username must be the user's UPN (name@domain)",
      "Use the mailbox owner's user principal name, e.g. support@contoso.com.",
    );
  }
  if (options.onDeviceCode !== undefined && typeof options.onDeviceCode !== "function") {
    throw invalidOption(
      "onDeviceCode must be a function",
      "Pass onDeviceCode: (info) => console.log(info.message).",
    );
  }
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0))
    throw invalidOption("timeoutMs must be positive", "Leave it unset for 30000.");
  if (options.refreshMarginSeconds !== undefined && !(options.refreshMarginSeconds >= 0)) {
    throw invalidOption("refreshMarginSeconds must be zero or more", "Leave it unset for 300.");
  }
}

function authorityHostOf(options: DeviceCodeTokenProviderOptions, cloud: CloudPreset): URL {
  const value = (options.authorityHost ?? cloud.authorityHost).replace(/\/+$/, "");
  try {
    const url = new URL(value);
    if (url.protocol !== "https:") throw new Error("not https");
    return url;
  } catch (error) {
    throw deviceCodeError("CONFIG_INVALID", `authorityHost must be an https:// URL, got "${value}"`, {
      cause: error,
      hint: "Leave authorityHost unset to use the cloud's Entra host, or pass the emulator's authorityHost.",
    });
  }
}

/** The user the tokens were issued to, from the access token or the id token (neither verified: only compared). */
function signedInUser(body: TokenBody): string | undefined {
  const claims = readJwtClaims(body.access_token);
  const id = typeof body.id_token === "string" ? readJwtClaims(body.id_token) : undefined;
  const name = claims?.upn ?? claims?.unique_name ?? id?.preferred_username ?? claims?.preferred_username;
  return typeof name === "string" ? name : undefined;
}

/**
 * A TokenProvider over the device code flow: a person approves the sign-in once (with MFA if the
 * tenant asks for it), then refresh-token grants serve every resource and renewal, headless, from the
 * cache. Same contract and caches as `ropcTokenProvider`.
 */
export function deviceCodeTokenProvider(options: DeviceCodeTokenProviderOptions): DeviceCodeTokenProvider {
  validate(options);
  const log = safeLogger(options.logger, SOURCE);
  const cloud = resolveCloud(options.cloud);
  const host = authorityHostOf(options, cloud);
  const authority = `${host.origin}/${options.tenantId}`;
  const { username } = options;
  const scopes = resolveScopes(cloud, options.scopes);
  const marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
  const retry: Required<RetryOptions> = {
    attempts: options.retry?.attempts ?? 2,
    baseDelayMs: options.retry?.baseDelayMs ?? 500,
    maxDelayMs: options.retry?.maxDelayMs ?? 60_000,
  };
  const context = { username, tenantId: options.tenantId, clientId: options.clientId };
  const http = createHttpClient({
    timeoutMs: options.timeoutMs ?? 30_000,
    proxy: options.proxy,
    ca: options.ca,
    source: SOURCE,
  });
  const cache = options.cache ?? memoryTokenCache();
  // Its own prefix: a ROPC provider sharing the cache must not drop this sign-in when its password fails.
  const keyPrefix =
    `m365-mail:v1:device-code:${host.host}:${options.tenantId}:${options.clientId}:${username}`.toLowerCase();
  const session = storedSignIn({
    authority,
    clientId: options.clientId,
    http,
    cache,
    keyPrefix,
    context,
    logger: log,
  });
  const health = signInHealthTracker(SOURCE, username);
  // Stops a device code flow still polling when the provider is disposed.
  const lifetime = new AbortController();
  // The refresh token Entra ID refused, and why: not sent again until the cache holds another one.
  let refused: { token: string; error: M365MailError } | undefined;

  async function interactive(resource: Resource, signal: AbortSignal): Promise<GrantedToken> {
    const onDeviceCode = options.onDeviceCode;
    if (!onDeviceCode) {
      throw invalidOption(
        "signIn() needs onDeviceCode to show the code to a person",
        "Pass onDeviceCode: (info) => console.log(info.message), or run `m365-mail login --device-code`.",
      );
    }
    const { body, started } = await runDeviceCodeFlow({
      authority,
      clientId: options.clientId,
      scopes: scopes[resource],
      http,
      context,
      onDeviceCode,
      logger: log,
      signal,
    });
    registerSecret(body.access_token, { rotating: true });
    registerSecret(body.refresh_token, { rotating: true });
    const who = signedInUser(body);
    if (who && who.toLowerCase() !== username.toLowerCase()) {
      throw invalidOption(
        `the device code was approved by ${who}, but this provider is for ${username}`,
        `Sign in as ${username} at the page, or set username (M365_USERNAME) to ${who}.`,
      );
    }
    refused = undefined;
    log.info(`device code sign-in of ${username} approved`);
    return session.store(resource, body, started, scopes[resource]);
  }

  function needsNewSignIn(error: M365MailError): M365MailError {
    return deviceCodeError(
      error.code === "AUTH_FAILED" ? "REFRESH_EXPIRED" : error.code,
      `the stored sign-in of ${username} can no longer be refreshed (${error.serverCode ?? error.code})`,
      {
        retryable: false,
        cause: error,
        status: error.status,
        serverCode: error.serverCode,
        hint: loginHint(
          username,
          "The refresh token was revoked, expired after 90 days idle, or a policy asks for a fresh MFA sign-in. ",
        ),
      },
    );
  }

  /** A token without a person: from the cache, or by the refresh-token grant. Undefined when a person must sign in. */
  async function silent(resource: Resource, force: boolean): Promise<GrantedToken | undefined> {
    if (!force) {
      const cached = await session.accessToken(resource, Date.now() + marginMs);
      if (cached) return cached;
    }
    const rt = await session.refreshToken();
    if (rt && refused?.token !== rt) {
      try {
        return await withRetry(
          () => session.refresh(resource, scopes[resource], rt),
          retry,
          log,
          `token refresh for ${resource}`,
        );
      } catch (error) {
        if (!isRefusedRefreshToken(error)) throw error;
        refused = { token: rt, error: needsNewSignIn(error) };
        log.warn(
          `the stored refresh token was refused (${error.serverCode ?? error.code}); a person must sign in again`,
        );
      }
    }
    return undefined;
  }

  /** No usable sign-in: show a code (interactive) or say what to run (headless). */
  async function withPerson(resource: Resource): Promise<GrantedToken> {
    if (options.onDeviceCode) return interactive(resource, lifetime.signal);
    const rt = await session.refreshToken();
    if (rt && refused?.token === rt) throw refused.error;
    throw deviceCodeError(
      "SIGN_IN_REQUIRED",
      `no device code sign-in of ${username} is stored in the token cache`,
      {
        hint: loginHint(username, "Nobody has signed in yet with this cache. "),
      },
    );
  }

  const memory = tokenMemory({
    marginMs,
    health,
    source: SOURCE,
    factory: "deviceCodeTokenProvider",
    // A shared cache (Redis) locks across processes around the refresh grant only: a device code
    // flow waits minutes for a person and must not hold the other processes' lock meanwhile.
    grant: async (resource, forceRefresh) =>
      (cache.withLock
        ? await cache.withLock(`${keyPrefix}:grant`, () => silent(resource, forceRefresh))
        : await silent(resource, forceRefresh)) ?? (await withPerson(resource)),
  });

  return {
    kind: "token-provider",
    name: "auth-device-code",
    username,
    cloud,
    onHealthChange: health.onHealthChange,
    healthState: health.healthState,
    getAccessToken: memory.getAccessToken,
    signIn(signInOptions = {}) {
      const resource = signInOptions.resource ?? "graph";
      if (memory.disposed) {
        return Promise.reject(
          invalidOption("the token provider was disposed", "Create a new deviceCodeTokenProvider."),
        );
      }
      const signal = signInOptions.signal
        ? AbortSignal.any([lifetime.signal, signInOptions.signal])
        : lifetime.signal;
      return memory.serial(async () => {
        const granted = await interactive(resource, signal);
        // The new sign-in replaces every token of the old one.
        memory.clear();
        return memory.remember(resource, granted);
      });
    },
    async hasSignIn() {
      return (await session.refreshToken()) !== undefined;
    },
    async signOut() {
      memory.clear();
      refused = undefined;
      await session.forget();
    },
    async dispose() {
      if (memory.disposed) return;
      memory.dispose();
      lifetime.abort(new Error("the token provider was disposed"));
      await http.close();
    },
  };
}
