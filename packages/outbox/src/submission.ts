import type { M365MailError } from "@m365-mail/core";

/** Codes after which Microsoft may have accepted the message although we saw no success. */
const MAYBE_SUBMITTED = new Set([
  "TIMEOUT",
  "CONNECTION_FAILED",
  "INVALID_RESPONSE",
  "SERVER_ERROR",
  "ABORTED",
]);

/** Whether a failed send may nevertheless have been accepted by Microsoft 365. */
export function maySubmitted(error: M365MailError): boolean {
  // The transport knows the request never left (sign-in failed, connection refused, TLS failed).
  if (error.requestSent === false) return false;
  // An HTTP 4xx is an answer that refused the request: nothing was submitted (only 5xx are unclear).
  if (error.status !== undefined && error.status >= 400 && error.status < 500) return false;
  return MAYBE_SUBMITTED.has(error.code);
}
