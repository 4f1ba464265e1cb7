export * from "./build-if-stale.js";
export * from "./curl.js";
export * from "./free-port.js";
export * from "./redis-server.js";
export * from "./requirements.js";
export * from "./spy-provider.js";
export * from "./to-mime.js";
