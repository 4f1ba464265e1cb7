import type { IncomingMessage, ServerResponse } from "node:http";
import type { FaultSpec } from "../context.js";
import { GraphError, graphErrorBody } from "./graph-error.js";
import { type GraphResponse, ODATA_JSON } from "./graph-types.js";

/** Reads a request body; past `limit` bytes it stops and reports `tooLarge` (Graph answers 413). */
export function readBody(req: IncomingMessage, limit: number): Promise<{ body: Buffer; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limit) {
      // Don't buffer what we will refuse anyway; the answer closes the connection.
      req.resume();
      resolve({ body: Buffer.alloc(0), tooLarge: true });
      return;
    }
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on("end", () => resolve({ body: tooLarge ? Buffer.alloc(0) : Buffer.concat(chunks), tooLarge }));
    req.on("error", reject);
  });
}

export function lowerCaseHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

export interface ResponseIds {
  requestId: string;
  clientRequestId: string;
}

function commonHeaders(ids: ResponseIds): Record<string, string> {
  return {
    "request-id": ids.requestId,
    "client-request-id": ids.clientRequestId,
    "x-ms-ags-diagnostic": JSON.stringify({
      ServerInfo: { DataCenter: "Emulator", Slice: "E", Ring: "0", ScaleUnit: "000" },
    }),
    "Cache-Control": "no-cache",
    "Strict-Transport-Security": "max-age=31536000",
  };
}

/** The Graph-shaped answer for a thrown GraphError (or anything else, as a 500). */
export function errorResponse(error: unknown, ids: ResponseIds): GraphResponse {
  const graphError =
    error instanceof GraphError
      ? error
      : new GraphError(
          500,
          "InternalServerError",
          "An internal server error occurred while processing the request.",
        );
  return {
    status: graphError.status,
    headers: graphError.headers,
    json: graphErrorBody(graphError.code, graphError.message, ids.requestId, ids.clientRequestId),
    contentType: "application/json",
  };
}

/** The answer a status fault injects. */
export function faultResponse(fault: FaultSpec, ids: ResponseIds): GraphResponse | undefined {
  const retryAfter =
    fault.retryAfterSeconds !== undefined ? { "Retry-After": String(fault.retryAfterSeconds) } : undefined;
  switch (fault.kind) {
    case "status400":
      return errorResponse(new GraphError(400, "BadRequest", "The request is invalid."), ids);
    case "status429":
      return errorResponse(
        new GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", {
          "Retry-After": String(fault.retryAfterSeconds ?? 1),
        }),
        ids,
      );
    case "status500":
      return errorResponse(
        new GraphError(
          500,
          "InternalServerError",
          "An internal server error occurred while processing the request.",
        ),
        ids,
      );
    case "status503":
      return errorResponse(
        new GraphError(
          503,
          "ServiceNotAvailable",
          "The service is temporarily unavailable. Please retry later.",
          retryAfter,
        ),
        ids,
      );
    case "status504":
      return errorResponse(
        new GraphError(
          504,
          "GatewayTimeout",
          "The server did not receive a timely response from an upstream server.",
          retryAfter,
        ),
        ids,
      );
    default:
      return undefined;
  }
}

export function writeResponse(
  res: ServerResponse,
  response: GraphResponse,
  ids: ResponseIds,
  malformed = false,
): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { ...commonHeaders(ids), ...(response.headers ?? {}) };
  let payload: Buffer | undefined;
  if (response.json !== undefined) {
    headers["Content-Type"] = response.contentType ?? ODATA_JSON;
    if (response.contentType === undefined) headers["OData-Version"] = "4.0";
    payload = Buffer.from(JSON.stringify(response.json));
  } else if (response.raw !== undefined) {
    headers["Content-Type"] = response.contentType ?? "application/octet-stream";
    payload = response.raw;
  }
  if (malformed) {
    // A body that starts like Graph's JSON and breaks off: clients must not crash on it.
    headers["Content-Type"] = ODATA_JSON;
    payload = Buffer.from(
      '{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users/$entity","value":[{"id":',
    );
  }
  headers["Content-Length"] = String(payload?.length ?? 0);
  res.writeHead(response.status, headers);
  res.end(payload);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
