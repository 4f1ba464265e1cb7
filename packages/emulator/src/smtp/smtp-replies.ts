import { randomBytes } from "node:crypto";

/**
 * Exchange Online's SMTP submission replies, word for word where the text is known. Each reply ends
 * with Exchange's diagnostic tail `[<server> <ISO time> <id>]`; ours names the emulator as the server.
 * Sources (observed replies quoted in public bug reports, and Microsoft's documentation):
 * - 535 5.7.3 / 5.7.139: https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission
 * - 432 4.3.2: https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
 * - 554 5.2.252 SendAsDenied, 530 5.7.57: replies quoted in gophish/gophish#2900 and postfix logs.
 */
export const SMTP_SERVER_NAME = "EMU01PR00CA0001.emulator.prod.outlook.com";

export interface SmtpReply {
  /** Basic reply code, e.g. 535. */
  readonly code: number;
  /** Text after the code, starting with the enhanced status code, e.g. "5.7.3 Authentication unsuccessful [...]". */
  readonly text: string;
}

/** `[EMU01PR00CA0001.emulator.prod.outlook.com 2025-01-01T10:00:00.000Z 08DD66EDEFB0DFDF]` */
export function replyTail(now = new Date()): string {
  return `[${SMTP_SERVER_NAME} ${now.toISOString()} ${randomBytes(8).toString("hex").toUpperCase()}]`;
}

const reply = (code: number, text: string): SmtpReply => ({ code, text: `${text} ${replyTail()}` });

export type SmtpAuthDisabledScope = "Tenant" | "Mailbox";

export const smtpReplies = {
  /** Bad, expired or revoked token; wrong audience (a Graph token); no SMTP.Send; `user=` not allowed. */
  authUnsuccessful: (): SmtpReply => reply(535, "5.7.3 Authentication unsuccessful"),

  /** SMTP AUTH switched off for the tenant (or by Security Defaults) or for the mailbox. */
  smtpAuthDisabled: (scope: SmtpAuthDisabledScope): SmtpReply =>
    reply(
      535,
      `5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the ${scope}. Visit https://aka.ms/smtp_auth_disabled for more information.`,
    ),

  /** From (envelope or header) is neither the mailbox nor one it has Send As on. Sent after DATA, as Exchange does. */
  sendAsDenied: (user: string, from: string): SmtpReply =>
    reply(
      554,
      `5.2.252 SendAsDenied; ${user} not allowed to send as ${from}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.`,
    ),

  /** More than 3 connections of one mailbox submitting at once. */
  concurrentConnections: (): SmtpReply =>
    reply(
      432,
      "4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.",
    ),

  /**
   * Per-minute message limit in "reject" mode. Exchange Online today delays such messages instead
   * (the emulator's default "delay" mode); older service descriptions said they were rejected for the
   * client to retry, with Exchange's message-rate text, which this reproduces.
   */
  messageRateExceeded: (): SmtpReply =>
    reply(421, "4.4.2 Message submission rate for this client has exceeded the configured limit"),

  /**
   * The mailbox passed its recipient rate limit (10,000 a day): Microsoft documents this reply, and that
   * the sender must wait up to 24 hours.
   * https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
   */
  submissionQuotaExceeded: (): SmtpReply =>
    reply(
      554,
      "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.",
    ),

  /** An injected 5xx fault: Exchange's front end answers proxy failures this way. */
  temporaryServerError: (): SmtpReply =>
    reply(451, "4.7.0 Temporary server error. Please try again later. PRX4"),

  /** Accepted at the end of DATA. */
  queued: (messageId: string): SmtpReply => ({
    code: 250,
    text: `2.0.0 OK ${messageId} [Hostname=${SMTP_SERVER_NAME}]`,
  }),
} as const;

/** MAIL/RCPT/DATA before AUTH. Static: smtp-server takes it as a fixed string. */
export const NOT_AUTHENTICATED_TEXT = `5.7.57 Client not authenticated to send mail. [${SMTP_SERVER_NAME}]`;

/** An Error that smtp-server turns into the reply `code text`. */
export function replyError(r: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(r.text), { responseCode: r.code });
}
