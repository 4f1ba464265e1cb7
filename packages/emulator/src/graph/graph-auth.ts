import { CLOUDS } from "@m365-mail/core";
import type { EmulatorContext, IssuedTokenClaims } from "../context.js";
import type { DirectoryUser } from "../directory.js";
import { accessDenied, GraphError } from "./graph-error.js";

/** The signed-in user behind a verified Graph token. */
export interface GraphPrincipal {
  readonly user: DirectoryUser;
  readonly claims: IssuedTokenClaims;
  /** Short permission names from `scp` ("Mail.Read"). */
  readonly scopes: ReadonlySet<string>;
  readonly appId: string;
}

// Graph accepts its app id or its resource URI as audience, in every cloud.
const GRAPH_AUDIENCES = new Set<string>([
  "00000003-0000-0000-c000-000000000000",
  ...Object.values(CLOUDS).flatMap((cloud) => [cloud.graphEndpoint, `${cloud.graphEndpoint}/`]),
]);

// A Bearer challenge like Graph's, so clients that read WWW-Authenticate find one.
const CHALLENGE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"';

const unauthorized = (message: string): GraphError =>
  new GraphError(401, "InvalidAuthenticationToken", message, { "WWW-Authenticate": CHALLENGE });

/**
 * Checks `Authorization: Bearer` the way Graph does: present, a JWT, signed by us, not expired, not
 * revoked, and meant for Graph. An Outlook token (IMAP/SMTP audience) is the classic mistake; Graph
 * answers it with "Invalid audience".
 */
export function authenticate(ctx: EmulatorContext, authorization: string | undefined): GraphPrincipal {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  if (!authorization?.trim()) throw unauthorized("Access token is empty.");
  if (!match) throw unauthorized("CompactToken parsing failed with error code: 80049217");
  const token = match[1]!;
  const check = ctx.verifyAccessToken(token);
  if (!check.ok) {
    switch (check.reason) {
      case "malformed":
        throw unauthorized("CompactToken parsing failed with error code: 80049217");
      case "expired":
        throw unauthorized("Lifetime validation failed, the token is expired.");
      case "revoked":
        throw unauthorized(
          "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
        );
      case "disabled_user":
        throw unauthorized(
          "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: UserDisabled",
        );
      default:
        throw unauthorized("Access token validation failure.");
    }
  }
  if (!GRAPH_AUDIENCES.has(check.claims.aud)) {
    throw unauthorized("Access token validation failure. Invalid audience.");
  }
  const scopes = new Set(
    String(check.claims.scp ?? "")
      .split(/\s+/)
      .filter(Boolean)
      // Full-URI scopes are reduced to the short names Graph puts into `scp`.
      .map((scope) => scope.replace(/^https?:\/\/[^/]+\//, "")),
  );
  return { user: check.user, claims: check.claims, scopes, appId: String(check.claims.appid ?? "") };
}

/** What a route does to a mailbox; decides which delegated permission it needs. */
export type Access = "profile" | "mail.read" | "mail.write" | "mail.send" | "calendar.read";

interface PermissionRule {
  /** Least-privileged permission, named in the 403's debug header. */
  own: string;
  ownAccepted: readonly string[];
  shared: string;
  sharedAccepted: readonly string[];
  /** Exchange mailbox right a delegate needs for this access. */
  mailboxRight: "FullAccess" | "SendAs";
}

// Least-privileged first; higher permissions imply lower ones (ReadWrite covers Read).
// Sources: the Permissions table of each route's Graph API reference page.
export const PERMISSIONS: Readonly<Record<Access, PermissionRule>> = {
  profile: {
    own: "User.Read",
    ownAccepted: ["User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All"],
    shared: "User.ReadBasic.All",
    sharedAccepted: ["User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All"],
    mailboxRight: "FullAccess",
  },
  "mail.read": {
    own: "Mail.Read",
    ownAccepted: ["Mail.Read", "Mail.ReadWrite"],
    shared: "Mail.Read.Shared",
    sharedAccepted: ["Mail.Read.Shared", "Mail.ReadWrite.Shared"],
    mailboxRight: "FullAccess",
  },
  "mail.write": {
    own: "Mail.ReadWrite",
    ownAccepted: ["Mail.ReadWrite"],
    shared: "Mail.ReadWrite.Shared",
    sharedAccepted: ["Mail.ReadWrite.Shared"],
    mailboxRight: "FullAccess",
  },
  "mail.send": {
    own: "Mail.Send",
    ownAccepted: ["Mail.Send"],
    shared: "Mail.Send.Shared",
    sharedAccepted: ["Mail.Send.Shared"],
    mailboxRight: "SendAs",
  },
  "calendar.read": {
    own: "Calendars.Read",
    ownAccepted: ["Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"],
    shared: "Calendars.Read.Shared",
    sharedAccepted: ["Calendars.Read.Shared", "Calendars.ReadWrite.Shared"],
    mailboxRight: "FullAccess",
  },
};

export function isSelf(principal: GraphPrincipal, mailbox: DirectoryUser): boolean {
  return principal.user.upn.toLowerCase() === mailbox.upn.toLowerCase();
}

export function isDelegate(principal: GraphPrincipal, mailbox: DirectoryUser): boolean {
  const upn = principal.user.upn.toLowerCase();
  return (mailbox.delegates ?? []).some((delegate) => delegate.toLowerCase() === upn);
}

/**
 * Own mailbox: the plain permission. Another mailbox: the `.Shared` permission AND a delegation on
 * the mailbox. Both failures are Graph's plain 403 ErrorAccessDenied; the debug header says what was
 * missing: a permission name (API permissions + Grant admin consent) or `FullAccess` / `SendAs`
 * (an Exchange mailbox permission).
 */
export function authorize(principal: GraphPrincipal, mailbox: DirectoryUser, access: Access): void {
  const rule = PERMISSIONS[access];
  const self = isSelf(principal, mailbox);
  const accepted = self ? rule.ownAccepted : rule.sharedAccepted;
  if (!accepted.some((permission) => principal.scopes.has(permission))) {
    throw accessDenied(self ? rule.own : rule.shared);
  }
  if (!self && access !== "profile" && !isDelegate(principal, mailbox)) throw accessDenied(rule.mailboxRight);
}
