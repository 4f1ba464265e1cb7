import { isDailySendingLimit, M365MailError } from "@m365-mail/core";

/** An SMTP reply: the basic code and the text after it, starting with the enhanced status code. */
export interface SmtpReply {
  readonly code: number;
  readonly text: string;
}

/** An Error that smtp-server sends as `code text`. */
export function replyError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/**
 * The bridge's replies, in Exchange Online's words where Exchange has a reply for the case, so that
 * devices and MTAs that branch on the enhanced code behave as they did against Exchange.
 */
export const bridgeReplies = {
  authRequired: (): SmtpReply => ({ code: 530, text: "5.7.57 Client not authenticated to send mail" }),
  authFailed: (): SmtpReply => ({ code: 535, text: "5.7.3 Authentication unsuccessful" }),
  authzidRefused: (): SmtpReply => ({
    code: 535,
    text: "5.7.8 Authentication unsuccessful: leave the authorization identity empty (the bridge maps logins to mailboxes)",
  }),
  authTemporary: (detail: string): SmtpReply => ({
    code: 454,
    text: `4.7.0 Temporary authentication failure: ${detail}`,
  }),
  signInProblem: (error: M365MailError): SmtpReply => ({
    code: 535,
    text: `5.7.8 Authentication unsuccessful: Microsoft 365 refused the sign-in (${error.code}${error.serverCode ? ` ${error.serverCode}` : ""}); the bridge's administrator must act: ${error.hint ?? error.message}`,
  }),
  sendAsDenied: (): SmtpReply => ({
    code: 550,
    text: "5.7.60 SMTP; Client does not have permissions to send as this sender",
  }),
  tooManyRecipients: (): SmtpReply => ({ code: 452, text: "4.5.3 Too many recipients" }),
  messageTooLarge: (): SmtpReply => ({
    code: 552,
    text: "5.3.4 Message size exceeds fixed maximum message size",
  }),
  clientNotAllowed: (address: string): SmtpReply => ({
    code: 554,
    text: `5.7.1 Client host ${address} is not allowed to use this listener`,
  }),
  tooManyConnections: (): SmtpReply => ({
    code: 421,
    text: "4.3.2 Too many connections from your host, try again later",
  }),
  accepted: (messageId: string): SmtpReply => ({
    code: 250,
    text: `2.6.0 ${messageId} Queued mail for delivery`,
  }),
};

/**
 * A delivery failure as an SMTP reply: 4xx when the same message may succeed later (the client keeps it
 * and retries, as after Microsoft 365's daily sending limit), 5xx with the hint when a person must change
 * something.
 */
export function deliveryReply(error: unknown): SmtpReply {
  if (!(error instanceof M365MailError)) {
    return { code: 451, text: "4.3.0 Temporary failure delivering to Microsoft 365, try again later" };
  }
  const detail = `${error.code}${error.serverCode ? ` ${error.serverCode}` : ""}: ${error.hint ?? error.message}`;
  // The spool's own store (Redis away): nothing went to Microsoft 365, and the client keeps the message.
  if (error.source === "outbox" && error.retryable) {
    return {
      code: 451,
      text: `4.3.0 The bridge could not store the message in its spool, try again later (${detail})`,
    };
  }
  // Exchange's own reply is permanent (554 5.2.0), but the same message goes through once the rolling
  // 24 hours free up: a 4xx keeps it in the client's queue (Postfix retries for days) instead of bouncing.
  if (isDailySendingLimit(error)) {
    return {
      code: 451,
      text: `4.2.0 The mailbox reached Microsoft 365's daily sending limit (10,000 recipients in 24 hours); try again later (${detail})`,
    };
  }
  switch (error.code) {
    case "SEND_AS_DENIED":
      return bridgeReplies.sendAsDenied();
    case "MESSAGE_TOO_LARGE":
      return bridgeReplies.messageTooLarge();
    case "MESSAGE_INVALID":
      return { code: 554, text: `5.6.0 Microsoft 365 refused the message content (${detail})` };
    case "THROTTLED":
      return { code: 451, text: `4.7.500 Server busy. Please try again later (${detail})` };
    case "PROTOCOL_DISABLED":
      return { code: 550, text: `5.7.139 Microsoft 365 refused the submission (${detail})` };
    case "ACCESS_DENIED":
    case "CONSENT_REQUIRED":
    case "WRONG_SCOPE":
      return { code: 550, text: `5.7.1 Microsoft 365 refused access to the mailbox (${detail})` };
    default:
      return error.retryable
        ? {
            code: 451,
            text: `4.4.0 Microsoft 365 did not accept the message yet, try again later (${detail})`,
          }
        : { code: 554, text: `5.0.0 Microsoft 365 refused the message (${detail})` };
  }
}

/** A login failure as an SMTP reply. */
export function authReply(error: unknown): SmtpReply {
  if (!(error instanceof M365MailError)) return bridgeReplies.authTemporary("internal error");
  if (error.code === "AUTH_FAILED") {
    // A retryable AUTH_FAILED is the lockout guard holding off: the password may be right.
    return error.retryable
      ? bridgeReplies.authTemporary("too many failed logins, try again later")
      : bridgeReplies.authFailed();
  }
  if (error.retryable) return bridgeReplies.authTemporary(error.code);
  return bridgeReplies.signInProblem(error);
}
