/**
 * Graph-shaped failures. Handlers throw `GraphError`; the server turns it into Microsoft's body
 * `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}` with a JSON
 * content type (the Graph SDK parses error bodies only then). Source: https://learn.microsoft.com/en-us/graph/errors
 */
export class GraphError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "GraphError";
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** The header that names the delegated permission a 403 lacked (Graph itself does not say). */
export const REQUIRED_PERMISSION_HEADER = "x-emulator-required-permission";

export const notFound = (): GraphError =>
  new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");

export const invalidRequest = (message: string): GraphError =>
  new GraphError(400, "ErrorInvalidRequest", message);

export const badRequest = (message: string): GraphError => new GraphError(400, "BadRequest", message);

/** What Graph answers for a path it has no resource for. */
export const segmentNotFound = (segment: string): GraphError =>
  new GraphError(400, "BadRequest", `Resource not found for the segment '${segment}'.`);

export const accessDenied = (permission: string): GraphError =>
  new GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", {
    [REQUIRED_PERMISSION_HEADER]: permission,
  });

/** Graph prints the date without milliseconds or zone: "2025-02-13T10:17:05". */
export function graphDate(now = new Date()): string {
  return now.toISOString().slice(0, 19);
}

export function graphErrorBody(
  code: string,
  message: string,
  requestId: string,
  clientRequestId: string,
): { error: { code: string; message: string; innerError: Record<string, string> } } {
  return {
    error: {
      code,
      message,
      innerError: { date: graphDate(), "request-id": requestId, "client-request-id": clientRequestId },
    },
  };
}
