import {
  type Logger,
  M365MailError,
  mentionsDailySendingLimit,
  registerSecret,
  requestNotSent,
  type TokenProvider,
} from "@m365-mail/core";
import type { Context, Middleware } from "@microsoft/microsoft-graph-client";
import { type GraphErrorBody, SOURCE } from "./graph-errors.js";
import { grantedScopes } from "./graph-hosts.js";
import { RequestPolicy } from "./request-policy.js";
import { backoffDelay, parseRetryAfter, type ResolvedRetryOptions, sleep } from "./retry-policy.js";
import type { Semaphore } from "./semaphore.js";

export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

/** What the middleware chain shares with the transport. */
export interface MiddlewareRuntime {
  readonly auth: TokenProvider;
  /** Origin that gets the Authorization header; tokens never go to any other host. */
  readonly origin: string;
  readonly semaphore: Semaphore;
  readonly retry: ResolvedRetryOptions;
  readonly timeoutMs: number;
  readonly fetch: FetchFunction;
  readonly log: Logger;
  /** Set when the transport reads another (shared) mailbox: its operations need the `.Shared` permissions. */
  readonly sharedMailbox?: string | undefined;
}

/** How often a 403 for a permission the token lacks may ask Entra for a fresh token (see AuthMiddleware). */
export const CONSENT_RECHECK_MS = 60_000;

export function policyOf(context: Context): RequestPolicy {
  const policy = context.middlewareControl?.getMiddlewareOptions(RequestPolicy) as RequestPolicy | undefined;
  if (!policy) {
    // Every call goes through GraphHttp, which always sets a policy; reaching this is a bug.
    throw new M365MailError("CONFIG_INVALID", "a Graph request was made without a request policy", {
      source: SOURCE,
    });
  }
  return policy;
}

function requestUrl(context: Context, policy: RequestPolicy): string {
  if (policy.exactUrl) return policy.exactUrl;
  return typeof context.request === "string" ? context.request : context.request.url;
}

function headersOf(context: Context): Record<string, string> {
  context.options ??= {};
  const headers = (context.options.headers ?? {}) as Record<string, string>;
  context.options.headers = headers;
  return headers;
}

/** Fails the request with a typed error, kept on the policy (the SDK would drop its class). */
function fail(policy: RequestPolicy, error: M365MailError): never {
  policy.error = error;
  throw error;
}

/**
 * Attaches the Graph token from the TokenProvider to every request for our Graph origin (a Map
 * lookup in the provider: no caching here), and after a 401 forces one refresh and one retry.
 */
export class AuthMiddleware implements Middleware {
  private next: Middleware | undefined;
  constructor(private readonly runtime: MiddlewareRuntime) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const policy = policyOf(context);
    const headers = headersOf(context);
    const url = requestUrl(context, policy);
    if (policy.anonymous || !sameOrigin(url, this.runtime.origin)) {
      delete headers.Authorization;
      return this.next!.execute(context);
    }
    headers.Authorization = `Bearer ${await this.token(policy, false)}`;
    await this.next!.execute(context);
    if (context.response?.status === 401) {
      this.runtime.log.debug("401 from Graph: refreshing the token once", { op: policy.op.name });
      headers.Authorization = `Bearer ${await this.token(policy, true)}`;
      await this.next!.execute(context);
    } else if (context.response?.status === 403 && this.mayBeConsentedSince(policy)) {
      // Admin consent granted after this token was issued shows only in a new token, and the cached one
      // may live another hour: ask for one (at most once a minute) and try again if it has the permission.
      this.consentCheckedAt = Date.now();
      const fresh = await this.token(policy, true);
      if (this.lacksPermission(policy, fresh)) return;
      this.runtime.log.info(`${this.permissionOf(policy)} is granted now: ${policy.op.name} tried again`);
      headers.Authorization = `Bearer ${fresh}`;
      await this.next!.execute(context);
    }
  }

  private consentCheckedAt = Number.NEGATIVE_INFINITY;

  private permissionOf(policy: RequestPolicy): string {
    return this.runtime.sharedMailbox ? policy.op.sharedPermission : policy.op.permission;
  }

  /** The token's `scp` does not name the operation's permission (an unreadable token: not known to lack it). */
  private lacksPermission(policy: RequestPolicy, token: string): boolean {
    return grantedScopes(token)?.includes(this.permissionOf(policy).toLowerCase()) === false;
  }

  private mayBeConsentedSince(policy: RequestPolicy): boolean {
    return (
      policy.token !== undefined &&
      this.lacksPermission(policy, policy.token) &&
      Date.now() - this.consentCheckedAt >= CONSENT_RECHECK_MS
    );
  }

  private async token(policy: RequestPolicy, forceRefresh: boolean): Promise<string> {
    try {
      const token = await this.runtime.auth.getAccessToken("graph", { forceRefresh, signal: policy.signal });
      registerSecret(token.token, { rotating: true });
      policy.token = token.token;
      return token.token;
    } catch (error) {
      // No request left without a token: whatever the sign-in error, nothing was sent.
      const what = `${policy.op.name}: the request was not sent, the sign-in for it failed`;
      if (error instanceof M365MailError) fail(policy, requestNotSent(error, what));
      fail(
        policy,
        new M365MailError("AUTH_FAILED", `${what}: could not get a Graph access token`, {
          source: SOURCE,
          cause: error,
          requestSent: false,
          hint: "Check the token provider's settings (tenant, client id, username, password).",
        }),
      );
    }
  }
}

/**
 * Owns all retrying (the SDK's RetryHandler is not in the chain: it repeats POST /sendMail after a
 * 504 and so delivers twice). Each try takes a slot of the per-mailbox semaphore and gets its own
 * timeout; waits between tries hold no slot.
 * - 429 and 503 mean "not processed": retried for every method, honouring Retry-After.
 * - 500, 502, 504, timeouts and dropped connections: retried only for idempotent operations.
 */
export class RetryMiddleware implements Middleware {
  private next: Middleware | undefined;
  constructor(private readonly runtime: MiddlewareRuntime) {}

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const policy = policyOf(context);
    const { retry, log } = this.runtime;
    let waited = 0;
    // Set once a try may have been processed (an idempotent request after a 5xx or a lost answer):
    // an abort after it is no longer "not sent". Sends are repeated only after tries that were not.
    let processedMaybe = false;
    for (let attempt = 1; ; attempt++) {
      policy.attempts = attempt;
      const release = await this.runtime.semaphore
        .acquire(policy.signal)
        .catch((e: M365MailError) => fail(policy, processedMaybe ? maybeProcessed(e) : e));
      // One controller per try, joined to the caller's signal by a listener removed afterwards:
      // AbortSignal.any/timeout would leave listeners on a long-lived caller signal (watch) until GC.
      const attemptController = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        attemptController.abort(new Error(`no answer within ${this.runtime.timeoutMs} ms`));
      }, this.runtime.timeoutMs);
      const onAbort = () => attemptController.abort(policy.signal?.reason);
      if (policy.signal?.aborted) onAbort();
      else policy.signal?.addEventListener("abort", onAbort, { once: true });
      context.options = { ...context.options, signal: attemptController.signal };
      let failure: unknown;
      try {
        context.response = undefined;
        await this.next!.execute(context);
      } catch (error) {
        failure = error;
      } finally {
        clearTimeout(timer);
        policy.signal?.removeEventListener("abort", onAbort);
        release();
      }

      if (failure !== undefined) {
        const error = networkError(failure, policy, timedOut, this.runtime.timeoutMs);
        const delay = backoffDelay(attempt, retry);
        if (
          error.code === "ABORTED" ||
          !error.retryable ||
          // A refused connection sent nothing: even a send may be tried again.
          (!policy.op.idempotent && error.requestSent !== false) ||
          attempt >= retry.attempts ||
          waited + delay > retry.maxWaitMs
        ) {
          fail(policy, error);
        }
        if (error.requestSent !== false) processedMaybe = true;
        log.debug(`${policy.op.name}: ${error.code}, retrying in ${delay} ms`, { attempt });
        await this.wait(delay, policy, processedMaybe);
        waited += delay;
        continue;
      }

      const response = context.response as Response | undefined;
      const status = response?.status ?? 0;
      const notProcessed = status === 429 || status === 503;
      const transient = status === 500 || status === 502 || status === 504;
      if (!notProcessed && !(transient && policy.op.idempotent)) return;
      if (notProcessed && (await isDailySendingLimitAnswer(response))) return;
      if (!notProcessed) processedMaybe = true;

      const retryAfter = parseRetryAfter(response?.headers.get("retry-after"));
      policy.retryAfterSeconds = retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000);
      if (attempt >= retry.attempts) return;
      const delay = retryAfter ?? backoffDelay(attempt, retry);
      // A wait longer than we may wait ends here with the 429/503 answer: the caller gets THROTTLED
      // with retryAfterSeconds, and can decide to come back later.
      if (delay > retry.maxDelayMs || waited + delay > retry.maxWaitMs) return;
      log.debug(`${policy.op.name}: HTTP ${status}, retrying in ${delay} ms`, {
        attempt,
        retryAfter: retryAfter !== undefined,
      });
      await this.wait(delay, policy, processedMaybe);
      waited += delay;
    }
  }

  private async wait(ms: number, policy: RequestPolicy, processedMaybe: boolean): Promise<void> {
    try {
      await sleep(ms, policy.signal);
    } catch (reason) {
      // Every try so far was refused unprocessed (429/503) or never left: nothing was sent.
      const aborted = new M365MailError(
        "ABORTED",
        `${policy.op.name} was aborted while waiting to retry${processedMaybe ? "" : "; the request was not sent"}`,
        { source: SOURCE, cause: reason, ...(processedMaybe ? {} : { requestSent: false as const }) },
      );
      fail(policy, aborted);
    }
  }
}

/**
 * Exchange's daily sending limit comes back as a refusal like throttling, but it lifts over hours as the
 * rolling 24 hours move on: retrying within our wait budget only spends requests. Reads a copy of the
 * body, so graphErrorFromResponse still can.
 */
async function isDailySendingLimitAnswer(response: Response | undefined): Promise<boolean> {
  try {
    const body = JSON.parse((await response?.clone().text()) || "{}") as GraphErrorBody;
    return mentionsDailySendingLimit(body?.error?.code);
  } catch {
    return false;
  }
}

/** An abort after a try that may have been processed: the same error without `requestSent: false`. */
function maybeProcessed(error: M365MailError): M365MailError {
  if (error.requestSent !== false) return error;
  return new M365MailError(error.code, `${error.message}; an earlier try may have been processed`, {
    source: SOURCE,
    cause: error,
  });
}

function networkError(
  failure: unknown,
  policy: RequestPolicy,
  timedOut: boolean,
  timeoutMs: number,
): M365MailError {
  if (failure instanceof M365MailError) return failure;
  if (policy.signal?.aborted) {
    return new M365MailError("ABORTED", `${policy.op.name} was aborted`, { source: SOURCE, cause: failure });
  }
  if (timedOut) {
    return new M365MailError("TIMEOUT", `${policy.op.name}: no answer from Graph within ${timeoutMs} ms`, {
      source: SOURCE,
      cause: failure,
      hint: "Raise the transport's timeoutMs, or check the network path to the Graph host.",
    });
  }
  const code = systemCode(failure);
  if (code && TLS_CODE.test(code)) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `${policy.op.name}: the request was not sent, the TLS handshake with Graph failed (${code})`,
      {
        source: SOURCE,
        cause: failure,
        requestSent: false,
        // The same certificate or protocol will fail the same way.
        retryable: false,
        hint: "Trust the Graph host's CA with the `ca` option (the emulator's CA file), or fix the proxy's certificate; check that graphOrigin is an https endpoint.",
      },
    );
  }
  if (code && REFUSED_CODES.has(code)) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `${policy.op.name}: the request was not sent, could not connect to Graph (${code})`,
      {
        source: SOURCE,
        cause: failure,
        requestSent: false,
        hint: "Check the Graph host (graphOrigin / cloud), the proxy and that the host is reachable.",
      },
    );
  }
  return new M365MailError("CONNECTION_FAILED", `${policy.op.name}: the connection to Graph failed`, {
    source: SOURCE,
    cause: failure,
    hint: "Check the network path, proxy and TLS trust (the `ca` option) for the Graph host.",
  });
}

/** Failures before a byte of the request left: no connection, or no TLS session. */
const REFUSED_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|^ERR_TLS|^ERR_SSL|^EPROTO$/;

/** The system or TLS error code of a fetch failure (undici wraps it in `cause`, sometimes twice). */
function systemCode(failure: unknown): string | undefined {
  let current: unknown = failure;
  for (let depth = 0; depth < 5 && current && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET") return code;
    const errors = (current as { errors?: unknown[] }).errors;
    current = (current as { cause?: unknown }).cause ?? (Array.isArray(errors) ? errors[0] : undefined);
  }
  return undefined;
}

/**
 * The last link: performs the HTTP request and reads the whole body before returning, so that the
 * semaphore slot is held until the server has finished answering (Outlook counts a request as
 * running until then).
 */
export class FetchHandler implements Middleware {
  constructor(private readonly runtime: MiddlewareRuntime) {}

  async execute(context: Context): Promise<void> {
    const policy = policyOf(context);
    const url = requestUrl(context, policy);
    const options = context.options ?? {};
    const response = await this.runtime.fetch(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      body: options.body,
      signal: options.signal,
    } as RequestInit);
    // A streamed download's slot is freed once its headers arrived: its body is read at the caller's pace.
    if (policy.stream && response.ok) {
      context.response = response;
      return;
    }
    const empty = response.status === 204 || response.status === 205 || response.status === 304;
    const bytes = empty ? null : new Uint8Array(await response.arrayBuffer());
    context.response = new Response(bytes, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }
}

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === new URL(origin).origin;
  } catch {
    return false;
  }
}
