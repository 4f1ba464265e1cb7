import { type CloudPreset, explainOutlookAuthFailure, M365MailError } from "@m365-mail/core";
import { SOURCE } from "./pop3-errors.js";

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

/**
 * Exchange answers every refused POP3 sign-in with the same "-ERR Authentication failure: unknown user name
 * or bad password."; core's `explainOutlookAuthFailure` tells the causes apart from the token's claims.
 */
export function explainPop3AuthFailure(context: Pop3AuthFailureContext): M365MailError {
  const { cause } = context;
  const serverCode = cause instanceof M365MailError ? cause.serverCode : undefined;
  const detail = cause instanceof Error ? cause.message.replace(/^\[m365-mail\] \[pop3\] /, "") : "";
  return explainOutlookAuthFailure({
    protocol: "pop3",
    token: context.token,
    username: context.signedInUser,
    mailbox: context.user,
    cloud: context.cloud,
    source: SOURCE,
    cause,
    ...(detail ? { serverText: detail } : {}),
    ...(serverCode ? { serverCode } : {}),
    ...(context.now ? { now: context.now } : {}),
  });
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
