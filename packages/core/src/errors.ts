import { redact } from "./redact.js";

/**
 * The closed set of error codes. Branch on these, never on message text.
 * `retryable` says whether the same call may succeed later without a settings change.
 */
export const ERROR_CODES = {
  AUTH_FAILED: { retryable: false },
  MFA_REQUIRED: { retryable: false },
  CONSENT_REQUIRED: { retryable: false },
  PUBLIC_CLIENT_DISABLED: { retryable: false },
  USER_NOT_ASSIGNED: { retryable: false },
  ACCOUNT_LOCKED: { retryable: false },
  ACCOUNT_DISABLED: { retryable: false },
  PASSWORD_EXPIRED: { retryable: false },
  POLICY_BLOCKED: { retryable: false },
  TENANT_NOT_FOUND: { retryable: false },
  APP_NOT_FOUND: { retryable: false },
  USER_NOT_FOUND: { retryable: false },
  REFRESH_EXPIRED: { retryable: true },
  /** No stored sign-in for an interactive flow (device code): a person must sign in once. */
  SIGN_IN_REQUIRED: { retryable: false },
  /** Nobody entered the device code before it expired. */
  DEVICE_CODE_EXPIRED: { retryable: false },
  /** The person at the verification page declined the sign-in. */
  DEVICE_CODE_DECLINED: { retryable: false },
  WRONG_SCOPE: { retryable: false },
  ACCESS_DENIED: { retryable: false },
  SEND_AS_DENIED: { retryable: false },
  PROTOCOL_DISABLED: { retryable: false },
  THROTTLED: { retryable: true },
  SERVER_ERROR: { retryable: true },
  INVALID_RESPONSE: { retryable: true },
  TIMEOUT: { retryable: true },
  CONNECTION_FAILED: { retryable: true },
  NOT_FOUND: { retryable: false },
  NOT_SUPPORTED: { retryable: false },
  CONFIG_INVALID: { retryable: false },
  MESSAGE_INVALID: { retryable: false },
  MESSAGE_TOO_LARGE: { retryable: false },
  ABORTED: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface M365MailErrorOptions {
  /** Which setting to change, in the words of the set-up guide. */
  hint?: string;
  /** Overrides the code's default. */
  retryable?: boolean;
  /** The original error (HTTP response, SDK error, socket error). */
  cause?: unknown;
  /** Plugin or component that raised it: "auth-ropc", "graph", "smtp", ... */
  source?: string;
  /** Microsoft's own error code when there is one ("AADSTS50126", "5.7.139", "ErrorAccessDenied"). */
  serverCode?: string;
  /** HTTP status when the error came from an HTTP answer. */
  status?: number;
  /** Seconds the server asked us to wait (Retry-After). */
  retryAfterSeconds?: number;
  /**
   * `false` when the operation's request never left: sign-in failed, the connection was refused, the
   * TLS handshake failed. A send that failed so was certainly not delivered. Unset: it may have left.
   */
  requestSent?: false;
}

/**
 * The one error class of m365-mail. Its message never holds a password or token:
 * every message passes through `redact()` before it is stored.
 */
export class M365MailError extends Error {
  override readonly name = "M365MailError";
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly retryable: boolean;
  readonly source: string | undefined;
  readonly serverCode: string | undefined;
  readonly status: number | undefined;
  readonly retryAfterSeconds: number | undefined;
  /** `false`: the request never left, so nothing was submitted (see the option). */
  readonly requestSent: false | undefined;

  constructor(code: ErrorCode, message: string, options: M365MailErrorOptions = {}) {
    const prefix = options.source ? `[m365-mail] [${options.source}] ` : "[m365-mail] ";
    const hint = options.hint ? redact(options.hint) : undefined;
    super(redact(prefix + message + (hint ? ` — ${hint}` : "")), { cause: options.cause });
    this.code = code;
    this.hint = hint;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.source = options.source;
    this.serverCode = options.serverCode;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.requestSent = options.requestSent;
  }

  /** A plain object for logs and `--json` output; secrets already redacted. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      hint: this.hint,
      retryable: this.retryable,
      source: this.source,
      serverCode: this.serverCode,
      status: this.status,
      retryAfterSeconds: this.retryAfterSeconds,
      ...(this.requestSent === false ? { requestSent: false } : {}),
    };
  }
}

export function isM365MailError(error: unknown, code?: ErrorCode): error is M365MailError {
  return error instanceof M365MailError && (code === undefined || error.code === code);
}

/** Shorthand for the error every transport throws for an operation it lacks. */
export function notSupported(source: string, operation: string): M365MailError {
  return new M365MailError("NOT_SUPPORTED", `${operation} is not supported by the ${source} transport`, {
    source,
    hint: "Use a transport whose capabilities include it (see mailbox.transports()).",
  });
}

/**
 * The same error, marked `requestSent: false` and prefixed with what was not done: for a failure
 * before a request could leave (sign-in for it failed, connection refused, TLS handshake failed).
 */
export function requestNotSent(error: M365MailError, what: string): M365MailError {
  if (error.requestSent === false) return error;
  let text = error.message.replace(/^\[m365-mail\] (\[[^\]]+\] )?/, "");
  if (error.hint && text.endsWith(` — ${error.hint}`)) text = text.slice(0, -(error.hint.length + 3));
  return new M365MailError(error.code, `${what}: ${text}`, {
    cause: error,
    retryable: error.retryable,
    requestSent: false,
    ...(error.source ? { source: error.source } : {}),
    ...(error.hint ? { hint: error.hint } : {}),
    ...(error.serverCode ? { serverCode: error.serverCode } : {}),
    ...(error.status ? { status: error.status } : {}),
    ...(error.retryAfterSeconds ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
  });
}

/**
 * Exchange's refusal once a mailbox passed Microsoft 365's daily sending limit (10,000 recipients in a
 * rolling 24 hours): `554 5.2.0 …SubmissionQuotaExceededException` over SMTP, the response code
 * `ErrorSubmissionQuotaExceeded` over Graph.
 */
const DAILY_SENDING_LIMIT = /SubmissionQuotaExceeded|recipient rate limit/i;

/** Whether a server's answer (an SMTP reply, a Graph error code) is the daily-sending-limit refusal. */
export function mentionsDailySendingLimit(serverText: string | undefined): boolean {
  return DAILY_SENDING_LIMIT.test(serverText ?? "");
}

/**
 * True for the error a send ends in when the mailbox passed its daily sending limit, whichever transport
 * sent it: THROTTLED and not retryable now, but the same message goes through once the rolling 24 hours
 * free up — a queue holds it and tries again later instead of failing it.
 */
export function isDailySendingLimit(error: unknown): boolean {
  return (
    isM365MailError(error, "THROTTLED") &&
    mentionsDailySendingLimit(`${error.serverCode ?? ""} ${error.message}`)
  );
}
