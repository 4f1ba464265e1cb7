export * from "./aadsts.js";
export * from "./cache/file-token-cache.js";
export * from "./cache/memory-token-cache.js";
export * from "./cache/redis-token-cache.js";
export * from "./cache/token-cache.js";
export { type CachedSignIn, cachedSignIn } from "./cached-sign-in.js";
export type { GrantedToken } from "./engine.js";
export type { FederationMode, SignInRoute } from "./federation/federated-sign-in.js";
// Building blocks for other token providers on the same contract (@m365-mail/auth-device-code):
// one HTTP client, one reading of Entra's answers, one retry policy.
export {
  createHttpClient,
  type HttpClient,
  type HttpClientOptions,
  type HttpResponse,
} from "./http-client.js";
export type { RetryOptions } from "./retry.js";
export { withRetry } from "./retry.js";
export * from "./ropc-token-provider.js";
export type { ScopeOptions } from "./scopes.js";
export { resolveScopes } from "./scopes.js";
export { type TokenMemory, type TokenMemoryOptions, tokenMemory } from "./token-memory.js";
export { expiresInSeconds, oauthErrorOf, readTokenResponse, type TokenBody } from "./token-response.js";
