export * from "./aadsts.js";
export * from "./cache/file-token-cache.js";
export * from "./cache/memory-token-cache.js";
export * from "./cache/redis-token-cache.js";
export * from "./cache/token-cache.js";
export type { FederationMode, SignInRoute } from "./federation/federated-sign-in.js";
export type { RetryOptions } from "./retry.js";
export * from "./ropc-token-provider.js";
export type { ScopeOptions } from "./scopes.js";
