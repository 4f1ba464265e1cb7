export * from "./attachments.js";
export * from "./delta.js";
export * from "./folders.js";
export * from "./messages.js";
export { type MessageIds, parseJson } from "./route.js";
export * from "./send.js";
