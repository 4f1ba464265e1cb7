export type { DeltaOptions, DeltaResult, WatchOptions } from "./delta.js";
export { WELL_KNOWN_FOLDERS } from "./folders.js";
export { checkGraphHeaders, GRAPH_SEND_LIMITS, graphHeaderProblem } from "./graph-limits.js";
export { type GraphTransport, type GraphTransportOptions, graphTransport } from "./graph-transport.js";
export type { BulkResult, GetMessageOptions } from "./messages.js";
export type { FetchFunction } from "./middleware.js";
export type { GraphRetryOptions } from "./retry-policy.js";
export { UPLOAD_CHUNK_BYTES } from "./send.js";
