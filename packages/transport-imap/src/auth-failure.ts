import { type CloudPreset, M365MailError, readJwtClaims } from "@m365-mail/core";

// Exchange Online's resource ("Office 365 Exchange Online") and Microsoft Graph's, as app ids and URIs.
const OUTLOOK_APP_ID = "00000002-0000-0ff1-ce00-000000000000";
const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";
const IMAP_PERMISSION = "IMAP.AccessAsUser.All";

export interface AuthFailureContext {
  /** The token the server refused (after one forced refresh). Only its claims are read. */
  readonly token: string;
  /** The `user=` of the XOAUTH2 string: the signed-in user or the shared mailbox. */
  readonly user: string;
  /** The signed-in user (the token provider's username). */
  readonly signedInUser: string;
  readonly cloud: CloudPreset;
  /** The server's tagged answer, e.g. "AUTHENTICATE failed." */
  readonly serverText?: string;
  readonly cause?: unknown;
  readonly now?: Date;
}

const trimSlash = (value: string) => value.replace(/\/+$/, "").toLowerCase();

/**
 * Exchange answers a bare `NO AUTHENTICATE failed.` for every refusal (wrong audience, missing scope,
 * IMAP switched off for the mailbox, no access to a shared mailbox). The token's claims tell most of
 * them apart; what they cannot tell is listed in the message.
 */
export function explainAuthFailure(context: AuthFailureContext): M365MailError {
  const { cloud, user, signedInUser } = context;
  const scope = `${cloud.outlookResource}/${IMAP_PERMISSION}`;
  const base = {
    source: "imap",
    cause: context.cause,
    ...(context.serverText ? { serverCode: context.serverText } : {}),
  };
  const refused = `IMAP sign-in as ${user} was refused${context.serverText ? ` ("${context.serverText}")` : ""}`;
  const claims = readJwtClaims(context.token);
  if (!claims) {
    return new M365MailError(
      "AUTH_FAILED",
      `${refused}; the access token is not a JWT, so its audience and scopes could not be checked. Possible causes: ` +
        `the token is not for ${cloud.outlookResource}, it lacks ${IMAP_PERMISSION}, IMAP is turned off for the mailbox, ` +
        `or ${signedInUser} has no access to ${user}`,
      {
        ...base,
        hint:
          `Request ${scope}; in App registration → API permissions add ${IMAP_PERMISSION} and Grant admin consent; ` +
          `in Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps turn IMAP on.`,
      },
    );
  }

  const audience = trimSlash(String(claims.aud ?? ""));
  const outlookAudiences = new Set([
    trimSlash(cloud.outlookResource),
    `https://${cloud.imap.host}`,
    "https://outlook.office.com",
    "https://outlook.office365.com",
    OUTLOOK_APP_ID,
  ]);
  if (!outlookAudiences.has(audience)) {
    const isGraph =
      audience === trimSlash(cloud.graphEndpoint) || audience === GRAPH_APP_ID || audience.includes("graph.");
    return new M365MailError(
      "WRONG_SCOPE",
      `${refused}: the access token is for ${isGraph ? "Microsoft Graph" : `"${claims.aud ?? "no audience"}"`}, not for ` +
        `Exchange Online (${cloud.outlookResource}). This happens when the scope is requested as "${IMAP_PERMISSION}" ` +
        `without its prefix`,
      {
        ...base,
        hint:
          `Request the scope with its prefix: ${scope} (the token provider's "outlook" resource). ` +
          `The short form ${IMAP_PERMISSION} yields a Graph token.`,
      },
    );
  }

  const scopes = typeof claims.scp === "string" ? claims.scp.split(" ").filter(Boolean) : [];
  const hasImap = scopes.some(
    (s) => s.toLowerCase() === IMAP_PERMISSION.toLowerCase() || s.toLowerCase() === scope.toLowerCase(),
  );
  if (!hasImap) {
    return new M365MailError(
      "CONSENT_REQUIRED",
      `${refused}: the token has no ${IMAP_PERMISSION} permission (it has: ${scopes.join(" ") || "none"})`,
      {
        ...base,
        hint:
          `App registration → API permissions → Add a permission → Office 365 Exchange Online → Delegated → ` +
          `${IMAP_PERMISSION}, then Grant admin consent; and request ${scope}.`,
      },
    );
  }

  const now = (context.now ?? new Date()).getTime();
  if (typeof claims.exp === "number" && claims.exp * 1000 <= now) {
    return new M365MailError(
      "AUTH_FAILED",
      `${refused}: the token provider returned an access token that has expired`,
      {
        ...base,
        retryable: true,
        hint: "Check the machine's clock; the token provider must hand out a fresh token when forceRefresh is set.",
      },
    );
  }

  const tokenUser = String(claims.upn ?? claims.preferred_username ?? claims.unique_name ?? "");
  if (tokenUser && tokenUser.toLowerCase() !== user.toLowerCase()) {
    if (user.toLowerCase() !== signedInUser.toLowerCase()) {
      // Shared mailbox: user= is the shared address, the token is the delegate's.
      return new M365MailError(
        "ACCESS_DENIED",
        `${refused}: ${tokenUser} signed in, but Exchange did not let it open the mailbox ${user}. Either ${tokenUser} ` +
          `has no Full Access permission on ${user}, or IMAP is turned off for ${user}`,
        {
          ...base,
          hint:
            `Exchange admin center → Recipients → Mailboxes → ${user} → Delegation → Read and manage (Full Access): add ` +
            `${tokenUser}; and ${user} → Manage email apps → IMAP on.`,
        },
      );
    }
    return new M365MailError(
      "AUTH_FAILED",
      `${refused}: the access token belongs to ${tokenUser}, not to ${user}`,
      {
        ...base,
        hint: "Use a token provider signed in as the mailbox owner, or set `mailbox` for a shared mailbox.",
      },
    );
  }

  return new M365MailError(
    "PROTOCOL_DISABLED",
    `${refused} although the token is for Exchange Online and has ${IMAP_PERMISSION}: IMAP is most likely turned off ` +
      `for ${user} (other possible causes: the mailbox has no Exchange Online licence, or the tenant's CAS mailbox plan ` +
      `disables IMAP)`,
    {
      ...base,
      hint: `Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps → IMAP: turn it on.`,
    },
  );
}
