import { type ErrorCode, M365MailError, type M365MailErrorOptions } from "@m365-mail/core";

export const SOURCE = "auth-device-code";

/** What a person runs to sign in again; every "needs a new sign-in" hint names it. */
export const LOGIN_COMMAND = "m365-mail login --device-code";

export function loginHint(username: string, why = ""): string {
  // No library method names here: the CLI and the server show this hint as it is (core's hintFor).
  return `${why}Run \`${LOGIN_COMMAND}\` (as ${username}) with the same token cache to sign in again; every process sharing that cache (file or Redis) picks the new sign-in up.`;
}

export function deviceCodeError(
  code: ErrorCode,
  message: string,
  options: Omit<M365MailErrorOptions, "source"> = {},
): M365MailError {
  return new M365MailError(code, message, { source: SOURCE, ...options });
}

export function invalidOption(message: string, hint: string): M365MailError {
  return deviceCodeError("CONFIG_INVALID", message, { hint });
}

export function aborted(cause: unknown): M365MailError {
  return deviceCodeError("ABORTED", "the device code sign-in was aborted by the caller", { cause });
}
