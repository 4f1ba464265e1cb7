export { PERMISSIONS } from "./graph-auth.js";
export { REQUIRED_PERMISSION_HEADER } from "./graph-error.js";
export { DEFAULT_MAX_REQUEST_BYTES, type GraphPart, type GraphPartOptions, graphPart } from "./graph-part.js";
export { DEFAULT_GRAPH_LIMITS, type GraphLimits } from "./throttle.js";
