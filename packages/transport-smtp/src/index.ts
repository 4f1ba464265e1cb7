export type { SmtpRetryOptions } from "./retry.js";
export { type SmtpTransport, type SmtpTransportOptions, smtpTransport } from "./smtp-transport.js";
