import { type ErrorCode, isM365MailError, M365MailError } from "@m365-mail/core";

/**
 * The command's exit codes (documented in README.md). Scripts branch on these:
 * 2 means "fix the command line or config", 3 "fix the tenant or account", 4 "try again later".
 */
export const EXIT = {
  OK: 0,
  /** A check or an operation failed (doctor found a ✗, a message was not found, a send was refused). */
  FAILED: 1,
  /** Bad arguments, missing or invalid configuration. */
  USAGE: 2,
  /** Sign-in or permission refused: a setting in Entra ID or Exchange must change. */
  AUTH: 3,
  /** Throttled, timed out, unreachable or a server error: the same command may work later. */
  TEMPORARY: 4,
  /** Stopped by Ctrl-C (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const AUTH_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "AUTH_FAILED",
  "MFA_REQUIRED",
  "CONSENT_REQUIRED",
  "PUBLIC_CLIENT_DISABLED",
  "USER_NOT_ASSIGNED",
  "ACCOUNT_LOCKED",
  "ACCOUNT_DISABLED",
  "PASSWORD_EXPIRED",
  "POLICY_BLOCKED",
  "TENANT_NOT_FOUND",
  "APP_NOT_FOUND",
  "USER_NOT_FOUND",
  "WRONG_SCOPE",
  "ACCESS_DENIED",
  "SEND_AS_DENIED",
  "PROTOCOL_DISABLED",
  "SIGN_IN_REQUIRED",
  "REFRESH_EXPIRED",
  "DEVICE_CODE_EXPIRED",
  "DEVICE_CODE_DECLINED",
]);

const USAGE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "CONFIG_INVALID",
  "MESSAGE_INVALID",
  "NOT_SUPPORTED",
]);

/** Which exit code an error means. Anything that is not an M365MailError is a plain failure. */
export function exitCodeFor(error: unknown): ExitCode {
  if (!isM365MailError(error)) return EXIT.FAILED;
  if (error.code === "ABORTED") return EXIT.INTERRUPTED;
  if (USAGE_CODES.has(error.code)) return EXIT.USAGE;
  if (AUTH_CODES.has(error.code)) return EXIT.AUTH;
  if (error.retryable) return EXIT.TEMPORARY;
  return EXIT.FAILED;
}

/** A mistake on the command line or in the configuration: CONFIG_INVALID from the "cli" source. */
export function usageError(message: string, hint: string, cause?: unknown): M365MailError {
  return new M365MailError("CONFIG_INVALID", message, { source: "cli", hint, cause });
}
