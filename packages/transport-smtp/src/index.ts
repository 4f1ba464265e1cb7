export type { SmtpRetryOptions } from "./retry.js";
export { isDailySendingLimit } from "./smtp-errors.js";
export { estimateSmtpBytes, SMTP_SEND_LIMITS } from "./smtp-limits.js";
export { type SmtpTransport, type SmtpTransportOptions, smtpTransport } from "./smtp-transport.js";
