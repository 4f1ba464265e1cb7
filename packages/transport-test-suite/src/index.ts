export type {
  ConformanceGroup,
  ConformanceMessage,
  ConformanceReader,
  ConformanceSender,
  TransportConformanceOptions,
} from "./conformance-options.js";
export { bodyText, bytesEqual, randomContent, UNICODE_NAME, UNICODE_SUBJECT } from "./fixtures.js";
export { runTransportConformance } from "./run-transport-conformance.js";
export { transportReader } from "./transport-reader.js";
export { waitFor } from "./wait-for.js";
