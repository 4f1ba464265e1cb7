import { type Logger, M365MailError, type TokenProvider } from "@m365-mail/core";
import { Client, type GraphRequest, ResponseType } from "@microsoft/microsoft-graph-client";
import {
  type ErrorContext,
  type GraphErrorBody,
  graphError,
  graphErrorFromResponse,
  SOURCE,
} from "./graph-errors.js";
import { isGraphHost } from "./graph-hosts.js";
import { AuthMiddleware, type FetchFunction, FetchHandler, RetryMiddleware } from "./middleware.js";
import type { GraphOperation } from "./operations.js";
import { RequestPolicy } from "./request-policy.js";
import { backoffDelay, type ResolvedRetryOptions, sleep } from "./retry-policy.js";
import type { Semaphore } from "./semaphore.js";

export type HttpMethod = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

export interface GraphRequestInit {
  /** JSON value, or a string / bytes sent as they are (raw MIME, upload chunks). */
  body?: unknown;
  headers?: Record<string, string>;
  /** Query parameters; values are URL-encoded here (the SDK would send them as they are). */
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal | undefined;
  /** Send no Authorization header (upload URLs). */
  anonymous?: boolean;
  /** What to read from a 2xx answer. Default "json". "stream": `data` is the unread body. */
  read?: "json" | "bytes" | "none" | "stream";
}

export interface GraphAnswer<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly data: T;
}

export interface GraphHttpOptions {
  auth: TokenProvider;
  /** Graph origin, e.g. https://graph.microsoft.com. */
  origin: string;
  graphResource: string;
  sharedMailbox: string | undefined;
  semaphore: Semaphore;
  retry: ResolvedRetryOptions;
  timeoutMs: number;
  fetch: FetchFunction;
  log: Logger;
}

/** One step of a hand-built `$batch` (the SDK's BatchRequestContent puts `/v1.0` into step URLs, which Graph rejects). */
export interface BatchStep {
  /** A path relative to the version root, e.g. "/me/messages/AAMk…". */
  url: string;
  method: HttpMethod;
  body?: unknown;
  headers?: Record<string, string>;
}

export type BatchOutcome<T = unknown> =
  | { readonly ok: true; readonly status: number; readonly body: T }
  | { readonly ok: false; readonly status: number; readonly error: M365MailError };

/** The Graph SDK client with our middleware chain, plus the request helpers the transport uses. */
export class GraphHttp {
  readonly client: Client;
  readonly origin: string;
  private readonly options: GraphHttpOptions;

  constructor(options: GraphHttpOptions) {
    this.options = options;
    this.origin = options.origin.replace(/\/+$/, "");
    const runtime = {
      auth: options.auth,
      origin: this.origin,
      semaphore: options.semaphore,
      retry: options.retry,
      timeoutMs: options.timeoutMs,
      fetch: options.fetch,
      log: options.log,
      sharedMailbox: options.sharedMailbox,
    };
    const host = new URL(this.origin).host;
    this.client = Client.initWithMiddleware({
      baseUrl: this.origin,
      defaultVersion: "v1.0",
      // Our AuthMiddleware checks the origin itself; customHosts keeps the SDK's own host check
      // (used if anyone adds its AuthenticationHandler) in line for the emulator or a private host.
      ...(isGraphHost(this.origin) ? {} : { customHosts: new Set([host]) }),
      middleware: [new AuthMiddleware(runtime), new RetryMiddleware(runtime), new FetchHandler(runtime)],
    });
  }

  /** `https://host/v1.0` — the root `@odata.nextLink`s and `$batch` step URLs are relative to. */
  get versionRoot(): string {
    return `${this.origin}/v1.0`;
  }

  errorContext(op: GraphOperation, policy?: RequestPolicy): ErrorContext {
    return {
      op,
      sharedMailbox: this.options.sharedMailbox,
      graphResource: this.options.graphResource,
      token: policy?.token,
      retryAfterSeconds: policy?.retryAfterSeconds,
    };
  }

  /**
   * One Graph call. `target` is a path below the version root ("/me/messages") or an absolute URL
   * taken from Graph (`@odata.nextLink`, `@odata.deltaLink`, `uploadUrl`), which is fetched as given.
   */
  async request<T = unknown>(
    op: GraphOperation,
    method: HttpMethod,
    target: string,
    init: GraphRequestInit = {},
  ): Promise<GraphAnswer<T>> {
    const absolute = /^https?:\/\//i.test(target);
    const url = absolute ? target : this.versionRoot + target + queryString(init.query);
    const policy = new RequestPolicy(op, {
      signal: init.signal,
      exactUrl: url,
      anonymous: init.anonymous,
      stream: init.read === "stream",
    });
    const request: GraphRequest = this.client
      .api(url)
      .responseType(ResponseType.RAW)
      .middlewareOptions([policy]);
    if (init.headers) request.headers(init.headers);

    let response: Response;
    try {
      const body = serializeBody(init.body);
      response = (await (method === "GET"
        ? request.get()
        : method === "POST"
          ? request.post(body)
          : method === "PATCH"
            ? request.patch(body)
            : method === "PUT"
              ? request.put(body)
              : request.delete())) as Response;
    } catch (error) {
      if (policy.error) throw policy.error;
      throw new M365MailError("CONNECTION_FAILED", `${op.name}: the Graph request failed`, {
        source: SOURCE,
        cause: error,
      });
    }
    if (!response.ok) throw await graphErrorFromResponse(response, this.errorContext(op, policy));
    const read = init.read ?? "json";
    let data: unknown;
    if (read === "stream")
      data = response.body
        ? stalledAfter(response.body, this.options.timeoutMs, op.name)
        : new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    else if (read === "bytes") data = new Uint8Array(await response.arrayBuffer());
    else if (read === "json") {
      const text = await response.text();
      try {
        data = text ? JSON.parse(text) : undefined;
      } catch (cause) {
        throw new M365MailError("INVALID_RESPONSE", `${op.name}: Graph answered with malformed JSON`, {
          source: SOURCE,
          status: response.status,
          cause,
        });
      }
    }
    return { status: response.status, headers: response.headers, data: data as T };
  }

  /**
   * Runs steps in `$batch` requests of at most 20. Steps answered 429/503 are sent again (in a
   * new batch, after the longest Retry-After) within the retry budget; other failures are returned
   * per step as typed errors.
   */
  async batch<T = unknown>(
    op: GraphOperation,
    steps: readonly BatchStep[],
    signal?: AbortSignal,
  ): Promise<BatchOutcome<T>[]> {
    const outcomes: BatchOutcome<T>[] = new Array(steps.length);
    for (let start = 0; start < steps.length; start += 20) {
      const chunk = steps.slice(start, start + 20).map((step, i) => ({ index: start + i, step }));
      await this.runBatch(op, chunk, outcomes, signal);
    }
    return outcomes;
  }

  private async runBatch<T>(
    op: GraphOperation,
    chunk: { index: number; step: BatchStep }[],
    outcomes: BatchOutcome<T>[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { retry, log } = this.options;
    let pending = chunk;
    let waited = 0;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const body = {
        requests: pending.map(({ index, step }) => ({
          id: String(index),
          method: step.method,
          url: step.url,
          ...(step.body !== undefined
            ? { body: step.body, headers: { "Content-Type": "application/json", ...step.headers } }
            : step.headers
              ? { headers: step.headers }
              : {}),
        })),
      };
      const answer = await this.request<{ responses?: BatchResponse[] }>(op, "POST", "/$batch", {
        body,
        signal,
      });
      const byId = new Map((answer.data?.responses ?? []).map((r) => [String(r.id), r]));
      const throttled: typeof pending = [];
      let retryAfterMs: number | undefined;
      for (const item of pending) {
        const r = byId.get(String(item.index));
        if (!r) {
          outcomes[item.index] = {
            ok: false,
            status: 0,
            error: new M365MailError(
              "INVALID_RESPONSE",
              `${op.name}: $batch answer lacks step ${item.index}`,
              {
                source: SOURCE,
              },
            ),
          };
          continue;
        }
        const status = Number(r.status);
        if (status >= 200 && status < 300) {
          outcomes[item.index] = { ok: true, status, body: r.body as T };
          continue;
        }
        if ((status === 429 || status === 503) && attempt < retry.attempts) {
          throttled.push(item);
          const after = Number(headerValue(r.headers, "retry-after"));
          if (Number.isFinite(after)) retryAfterMs = Math.max(retryAfterMs ?? 0, after * 1000);
          continue;
        }
        const retryAfter = Number(headerValue(r.headers, "retry-after"));
        outcomes[item.index] = {
          ok: false,
          status,
          error: graphError(status, r.body as GraphErrorBody | undefined, {
            ...this.errorContext(op),
            retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
          }),
        };
      }
      pending = throttled;
      if (pending.length === 0) break;
      const delay = retryAfterMs ?? backoffDelay(attempt, retry);
      if (delay > retry.maxDelayMs || waited + delay > retry.maxWaitMs) {
        for (const item of pending) {
          outcomes[item.index] = {
            ok: false,
            status: 429,
            error: graphError(429, undefined, {
              ...this.errorContext(op),
              retryAfterSeconds: Math.ceil(delay / 1000),
            }),
          };
        }
        break;
      }
      log.debug(`${op.name}: ${pending.length} batch steps throttled, retrying in ${delay} ms`);
      await sleep(delay, signal).catch((reason: unknown) => {
        throw new M365MailError("ABORTED", `${op.name} was aborted while waiting to retry`, {
          source: SOURCE,
          cause: reason,
        });
      });
      waited += delay;
    }
  }
}

interface BatchResponse {
  id: string;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

function headerValue(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
}

export function queryString(query: GraphRequestInit["query"]): string {
  if (!query) return "";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    parts.push(`${key}=${encodeURIComponent(String(value))}`);
  }
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

function serializeBody(body: unknown): unknown {
  if (body === undefined || typeof body === "string") return body;
  // The SDK serializes a Uint8Array from its whole underlying ArrayBuffer (ignoring byteOffset),
  // which sends the wrong bytes for a view into a larger buffer; a Buffer passes through untouched.
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return JSON.stringify(body);
}

/**
 * A streamed body that fails with TIMEOUT when no bytes arrive for `idleMs`: the request's own
 * timeout ends with the headers, and a download that stalls half-way must not hang its reader forever.
 */
function stalledAfter(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  opName: string,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new M365MailError("TIMEOUT", `${opName}: no data from Graph for ${idleMs} ms`, {
            source: SOURCE,
            hint: "The download stalled half-way; raise timeoutMs if the link is slow",
          });
          // Reject first: cancelling settles the pending read as `done`, which would win the race.
          reject(error);
          reader.cancel(error).catch(() => undefined);
        }, idleMs);
      });
      try {
        const { done, value } = await Promise.race([reader.read(), stalled]);
        if (done) controller.close();
        else controller.enqueue(value);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
