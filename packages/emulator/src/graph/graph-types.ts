import type { GraphPrincipal } from "./graph-auth.js";

/** One Graph call, from HTTP or from a `$batch` step; `path` is relative to `/v1.0`. */
export interface GraphRequest {
  readonly method: string;
  /** As requested, e.g. "/me/messages" or "/users/shared@contoso.com/messages". */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly requestId: string;
  readonly clientRequestId: string;
  readonly principal: GraphPrincipal;
  readonly inBatch: boolean;
  /** A delay fault: waited out while the request holds its throttling slot. */
  readonly delayMs?: number;
}

export interface GraphResponse {
  status: number;
  headers?: Record<string, string>;
  /** A JSON body (sent with Graph's OData content type). */
  json?: unknown;
  /** A non-JSON body ($value). */
  raw?: Buffer;
  contentType?: string;
}

export const ODATA_JSON =
  "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
