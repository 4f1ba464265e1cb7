import { type CloudPreset, M365MailError, readJwtClaims } from "@m365-mail/core";
import { SOURCE } from "./pop3-errors.js";

// "Office 365 Exchange Online" and "Microsoft Graph" as app ids (v1 tokens carry these as `aud`).
const OUTLOOK_APP_ID = "00000002-0000-0ff1-ce00-000000000000";
const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";
export const POP_PERMISSION = "POP.AccessAsUser.All";

export interface Pop3AuthFailureContext {
  /** The access token the server refused; only its claims are read. */
  readonly token: string;
  /** The `user=` sent in XOAUTH2: the signed-in user or a shared mailbox. */
  readonly user: string;
  /** The token provider's username. */
  readonly signedInUser: string;
  readonly cloud: CloudPreset;
  /** The AUTH_FAILED error of the client (server text, challenge status). */
  readonly cause: unknown;
  readonly now?: Date;
}

const normalise = (value: string) => value.replace(/\/+$/, "").toLowerCase();

/**
 * Exchange answers every refused POP3 sign-in with the same "-ERR Authentication failure: unknown user name
 * or bad password." — wrong audience, missing permission, POP3 switched off for the mailbox, no access to a
 * shared mailbox. The token's claims tell most of these apart; the rest is named as possibilities.
 */
export function explainPop3AuthFailure(context: Pop3AuthFailureContext): M365MailError {
  const { cloud, user, signedInUser, cause } = context;
  const scope = `${cloud.outlookResource}/${POP_PERMISSION}`;
  const serverCode = cause instanceof M365MailError ? cause.serverCode : undefined;
  const base = { source: SOURCE, cause, ...(serverCode ? { serverCode } : {}) };
  const detail = cause instanceof Error ? cause.message.replace(/^\[m365-mail\] \[pop3\] /, "") : "";
  const refused = `POP3 sign-in as ${user} was refused${detail ? ` (${detail})` : ""}`;
  const popOn = `Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps → POP3 on`;

  const claims = readJwtClaims(context.token);
  if (!claims) {
    return new M365MailError(
      "AUTH_FAILED",
      `${refused}; the access token is not a JWT, so its audience and scopes could not be checked. Possible causes: ` +
        `the token is not for ${cloud.outlookResource}, it lacks ${POP_PERMISSION}, POP3 is turned off for the mailbox, ` +
        `or ${signedInUser} has no access to ${user}`,
      {
        ...base,
        hint: `Request ${scope}; App registration → API permissions → add ${POP_PERMISSION} → Grant admin consent; ${popOn}.`,
      },
    );
  }

  const audience = normalise(String(claims.aud ?? ""));
  const outlookAudiences = new Set([
    normalise(cloud.outlookResource),
    `https://${cloud.pop3.host}`,
    "https://outlook.office.com",
    "https://outlook.office365.com",
    OUTLOOK_APP_ID,
  ]);
  if (!outlookAudiences.has(audience)) {
    const isGraph =
      audience === normalise(cloud.graphEndpoint) || audience === GRAPH_APP_ID || audience.includes("graph.");
    return new M365MailError(
      "WRONG_SCOPE",
      `${refused}: the access token is for ${isGraph ? "Microsoft Graph" : `"${String(claims.aud ?? "no audience")}"`}, ` +
        `not for Exchange Online (${cloud.outlookResource}). This happens when the scope is requested as ` +
        `"${POP_PERMISSION}" without its prefix`,
      {
        ...base,
        hint: `Request the scope with its prefix: ${scope} (the token provider's "outlook" resource), not the short ${POP_PERMISSION}, which yields a Graph token.`,
      },
    );
  }

  const scopes = typeof claims.scp === "string" ? claims.scp.split(" ").filter(Boolean) : [];
  const hasPop = scopes.some((s) => {
    const lower = s.toLowerCase();
    return lower === POP_PERMISSION.toLowerCase() || lower.endsWith(`/${POP_PERMISSION.toLowerCase()}`);
  });
  if (!hasPop) {
    return new M365MailError(
      "CONSENT_REQUIRED",
      `${refused}: the token has no ${POP_PERMISSION} permission (it has: ${scopes.join(" ") || "none"})`,
      {
        ...base,
        hint:
          `App registration → API permissions → Add a permission → Office 365 Exchange Online → Delegated → ` +
          `${POP_PERMISSION}, then Grant admin consent; and request ${scope}.`,
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
          `has no Full Access permission on ${user}, or POP3 is turned off for ${user}`,
        {
          ...base,
          hint:
            `Exchange admin center → Recipients → Mailboxes → ${user} → Delegation → Read and manage (Full Access): ` +
            `add ${tokenUser}; and ${popOn}.`,
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

  // Same answer from Exchange for "POP3 off" and for a sign-in it refuses for other reasons: name both.
  return new M365MailError(
    "PROTOCOL_DISABLED",
    `${refused} although the token is for Exchange Online and has ${POP_PERMISSION}. Exchange gives this same answer ` +
      `when POP3 is turned off for the mailbox (most likely) and when it refuses the sign-in itself (no Exchange ` +
      `Online licence, mailbox not provisioned, the tenant's mailbox plan disabling POP3)`,
    {
      ...base,
      hint: `${popOn}; if it is already on, check the mailbox's licence in the Microsoft 365 admin center.`,
    },
  );
}

/**
 * Exchange may accept AUTH and refuse the first real command (a shared mailbox the user cannot open, a
 * mailbox that is not ready). Called with the error of that first command.
 */
export function explainFirstCommandFailure(error: unknown, user: string, signedInUser: string): unknown {
  if (!(error instanceof M365MailError) || (error.code !== "SERVER_ERROR" && error.code !== "AUTH_FAILED"))
    return error;
  if (error.serverCode === "IN-USE") return error;
  const detail = error.message.replace(/^\[m365-mail\] \[pop3\] /, "");
  if (user.toLowerCase() !== signedInUser.toLowerCase()) {
    return new M365MailError(
      "ACCESS_DENIED",
      `the POP3 server accepted the sign-in of ${signedInUser} but refused to open ${user} (${detail})`,
      {
        source: SOURCE,
        cause: error,
        hint: `Exchange admin center → Recipients → Mailboxes → ${user} → Delegation → Read and manage (Full Access): add ${signedInUser}.`,
      },
    );
  }
  return new M365MailError(
    "SERVER_ERROR",
    `the POP3 server accepted the sign-in but refused to open the mailbox (${detail})`,
    {
      source: SOURCE,
      cause: error,
      hint: `Retry later; if it persists, check Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps → POP3 on.`,
    },
  );
}
