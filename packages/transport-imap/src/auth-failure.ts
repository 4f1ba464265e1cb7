import { type CloudPreset, explainOutlookAuthFailure, type M365MailError } from "@m365-mail/core";

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

/**
 * Exchange answers a bare `NO AUTHENTICATE failed.` for every refusal; core's `explainOutlookAuthFailure`
 * tells the causes apart from the token's claims. Kept as this package's export for existing callers.
 */
export function explainAuthFailure(context: AuthFailureContext): M365MailError {
  return explainOutlookAuthFailure({
    protocol: "imap",
    token: context.token,
    username: context.signedInUser,
    mailbox: context.user,
    cloud: context.cloud,
    cause: context.cause,
    ...(context.serverText ? { serverText: context.serverText, serverCode: context.serverText } : {}),
    ...(context.now ? { now: context.now } : {}),
  });
}
