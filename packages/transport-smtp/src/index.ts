// Core's, re-exported where it was first published: it recognises the daily limit of either transport.
export { isDailySendingLimit } from "@m365-mail/core";
export type { SmtpRetryOptions } from "./retry.js";
export { estimateSmtpBytes, SMTP_SEND_LIMITS } from "./smtp-limits.js";
export { type SmtpTransport, type SmtpTransportOptions, smtpTransport } from "./smtp-transport.js";
