export * from "./build-if-stale.js";
export * from "./free-port.js";
export * from "./redis-server.js";
