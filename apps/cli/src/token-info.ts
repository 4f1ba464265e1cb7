import type { AccessToken, Resource } from "@m365-mail/core";
import { summarizeToken } from "@m365-mail/core";
import type { Paint } from "./output.js";

/** What may be shown about a token: its claims, never the token. */
export interface TokenInfo {
  resource: Resource;
  audience: string | undefined;
  scopes: string[];
  user: string | undefined;
  tenantId: string | undefined;
  appId: string | undefined;
  issuedAt: Date | undefined;
  expiresAt: Date;
}

export function tokenInfo(token: AccessToken): TokenInfo {
  const claims = summarizeToken(token.token);
  return {
    resource: token.resource,
    audience: claims?.audience,
    // The `scp` claim says what Entra granted; the provider's list is what was asked for.
    scopes: claims?.scopes.length ? claims.scopes : [...token.scopes],
    user: claims?.user,
    tenantId: claims?.tenantId,
    appId: claims?.appId,
    issuedAt: claims?.issuedAt,
    expiresAt: claims?.expiresAt ?? token.expiresAt,
  };
}

export function relativeTime(date: Date, now = Date.now()): string {
  const minutes = Math.round((date.getTime() - now) / 60_000);
  if (Math.abs(minutes) < 1) return "now";
  const span =
    Math.abs(minutes) < 120 ? `${Math.abs(minutes)} min` : `${Math.round(Math.abs(minutes) / 60)} h`;
  return minutes > 0 ? `in ${span}` : `${span} ago`;
}

/** Two or three lines per token for people: audience, user, expiry, scopes. */
export function tokenLines(info: TokenInfo, paint: Paint, indent = "  "): string[] {
  const pad = `${indent}${" ".repeat(9)}`;
  return [
    `${indent}${paint.bold(info.resource.padEnd(8))} aud ${info.audience ?? "?"}  user ${info.user ?? "?"}`,
    `${pad}expires ${info.expiresAt.toISOString()} (${relativeTime(info.expiresAt)})`,
    `${pad}scopes  ${info.scopes.join(" ") || paint.dim("(none)")}`,
  ];
}
