import { readJwtClaims } from "@m365-mail/core";

/** Microsoft Graph's hosts in every cloud (the SDK's own list). https://learn.microsoft.com/en-us/graph/deployments */
export const GRAPH_HOSTS: ReadonlySet<string> = new Set([
  "graph.microsoft.com",
  "graph.microsoft.us",
  "dod-graph.microsoft.us",
  "graph.microsoft.de",
  "microsoftgraph.chinacloudapi.cn",
  "canary.graph.microsoft.com",
]);

/** Graph's application id: the other form a Graph token's `aud` takes. */
const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

export function isGraphHost(url: string | undefined): boolean {
  const host = hostOf(url);
  return host !== undefined && GRAPH_HOSTS.has(host);
}

/**
 * The resource URI scopes must start with: the cloud's Graph endpoint, else the origin when it is a
 * Graph host; a private host (the emulator, a proxy) stands for global Graph.
 */
export function graphResourceFor(cloudEndpoint: string | undefined, origin: string): string {
  for (const candidate of [cloudEndpoint, origin]) {
    if (candidate && isGraphHost(candidate)) return new URL(candidate).origin;
  }
  return "https://graph.microsoft.com";
}

/** Whether a token's `aud` is Microsoft Graph (any cloud), rather than Outlook or anything else. */
export function isGraphAudience(audience: string, graphResource: string): boolean {
  const a = audience.replace(/\/$/, "").toLowerCase();
  return a === GRAPH_APP_ID || a === graphResource.replace(/\/$/, "").toLowerCase() || isGraphHost(a);
}

/** The token's delegated permissions (`scp`), lower-case; undefined when the token is not a readable JWT. */
export function grantedScopes(token: string | undefined): string[] | undefined {
  if (!token) return undefined;
  const scp = readJwtClaims(token)?.scp;
  return typeof scp === "string"
    ? scp
        .split(" ")
        .filter(Boolean)
        .map((s) => s.replace(/^https?:\/\/[^/]+\//, "").toLowerCase())
    : undefined;
}
