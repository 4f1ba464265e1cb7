import type { AccessToken, GetTokenOptions, Resource, TokenProvider } from "@m365-mail/core";

export interface SpyProviderOptions {
  /** Hand out this resource's token whatever is asked for (a Graph token for IMAP: the short-scope mistake). */
  resource?: Resource;
}

export type SpyProvider = TokenProvider & { calls: { resource: Resource; forceRefresh: boolean }[] };

/** Wraps a token provider to record every request, or to hand out the wrong resource's token. */
export function spyProvider(inner: TokenProvider, options: SpyProviderOptions = {}): SpyProvider {
  const calls: SpyProvider["calls"] = [];
  return {
    kind: "token-provider",
    name: "spy",
    username: inner.username,
    ...(inner.cloud ? { cloud: inner.cloud } : {}),
    calls,
    getAccessToken(resource: Resource, o?: GetTokenOptions): Promise<AccessToken> {
      calls.push({ resource, forceRefresh: o?.forceRefresh ?? false });
      return inner.getAccessToken(options.resource ?? resource, o);
    },
    dispose: () => inner.dispose?.() ?? Promise.resolve(),
  };
}
