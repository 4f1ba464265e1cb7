import type { M365MailError } from "@m365-mail/core";
import type { MiddlewareOptions } from "@microsoft/microsoft-graph-client";
import type { GraphOperation } from "./operations.js";

export interface RequestPolicyInit {
  signal?: AbortSignal | undefined;
  /** Fetch this URL byte for byte (an `@odata.nextLink`, a `deltaLink`, an `uploadUrl`): the SDK re-assembles query strings. */
  exactUrl?: string | undefined;
  /** Send no Authorization header (upload sessions' `uploadUrl` must not get one). */
  anonymous?: boolean | undefined;
  /** Hand a 2xx body over unread (attachment downloads), instead of reading it whole. */
  stream?: boolean | undefined;
}

/**
 * Per-request settings handed to our middleware through the SDK's middleware options, and the
 * request's outcome handed back: the SDK wraps any error a middleware throws into a GraphError and
 * drops its class, so the typed error travels here instead.
 */
export class RequestPolicy implements MiddlewareOptions {
  readonly op: GraphOperation;
  readonly signal: AbortSignal | undefined;
  readonly exactUrl: string | undefined;
  readonly anonymous: boolean;
  readonly stream: boolean;
  /** The access token of the last try, for WRONG_SCOPE and permission hints. Never printed. */
  token: string | undefined;
  error: M365MailError | undefined;
  retryAfterSeconds: number | undefined;
  attempts = 0;

  constructor(op: GraphOperation, init: RequestPolicyInit = {}) {
    this.op = op;
    this.signal = init.signal;
    this.exactUrl = init.exactUrl;
    this.anonymous = init.anonymous ?? false;
    this.stream = init.stream ?? false;
  }
}
