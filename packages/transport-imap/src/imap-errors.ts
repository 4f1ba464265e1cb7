import { M365MailError, throttlingIn } from "@m365-mail/core";

/** What imapflow and Node put on the errors we see. */
export interface ImapFlowErrorLike {
  code?: string;
  message?: string;
  authenticationFailed?: boolean;
  response?: string;
  responseText?: string;
  responseStatus?: string;
  serverResponseCode?: string;
}

const asLike = (error: unknown): ImapFlowErrorLike =>
  error && typeof error === "object" ? (error as ImapFlowErrorLike) : { message: String(error) };

const TIMEOUT_CODES = new Set([
  "CONNECT_TIMEOUT",
  "GREETING_TIMEOUT",
  "UPGRADE_TIMEOUT",
  "ETIMEOUT",
  "ETIMEDOUT",
]);
// The connection is gone: the command may not have run, and a new connection may succeed.
const DROP_CODES = new Set([
  "NoConnection",
  "EConnectionClosed",
  "StateLogout",
  "ClosedAfterConnectText",
  "ClosedAfterConnectTLS",
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_STREAM_DESTROYED",
  "ETIMEOUT",
]);
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO/;

export function isAuthenticationFailure(error: unknown): boolean {
  return asLike(error).authenticationFailed === true;
}

/** True when the error means the connection went away (BYE, reset, timeout) rather than a command failed. */
export function isConnectionDrop(error: unknown): boolean {
  const e = asLike(error);
  if (e.code && DROP_CODES.has(e.code)) return true;
  return /connection (closed|not available)|socket (closed|hang up)|BYE/i.test(e.message ?? "");
}

export function serverText(error: unknown): string | undefined {
  const e = asLike(error);
  const text = e.responseText ?? e.response;
  return typeof text === "string" && text.length > 0 ? text.trim().slice(0, 200) : undefined;
}

export interface ErrorContext {
  /** What we were doing, e.g. "connect to outlook.office365.com:993", "FETCH INBOX". */
  readonly operation: string;
  readonly host: string;
  readonly port: number;
}

/** Turns anything imapflow or a socket throws into an M365MailError; M365MailErrors pass through. */
export function toImapError(error: unknown, context: ErrorContext): M365MailError {
  if (error instanceof M365MailError) return error;
  const e = asLike(error);
  const code = e.code ?? "";
  const text = serverText(error);
  const where = `${context.host}:${context.port}`;
  const detail = (text ?? e.message ?? "unknown error").slice(0, 200);
  if (TIMEOUT_CODES.has(code)) {
    return new M365MailError("TIMEOUT", `${context.operation}: ${where} did not answer in time (${code})`, {
      source: "imap",
      cause: error,
      serverCode: code,
      hint: "Check that the host and port are reachable from here (outbound TCP 993), or raise `timeoutMs`.",
    });
  }
  const throttled = throttlingIn(detail);
  if (code === "ETHROTTLE" || throttled) {
    // "Suggested Backoff Time: N milliseconds": how long Exchange wants this mailbox left alone.
    const seconds = throttled?.retryAfterSeconds;
    return new M365MailError(
      "THROTTLED",
      `${context.operation}: the server throttled the session (${detail})`,
      {
        source: "imap",
        cause: error,
        serverCode: code || undefined,
        ...(seconds === undefined ? {} : { retryAfterSeconds: seconds }),
        hint: `${seconds === undefined ? "" : `Wait about ${seconds} s before the next IMAP command or sign-in. `}Exchange limits concurrent IMAP sessions per mailbox: close other clients or watchers of this mailbox.`,
      },
    );
  }
  if (TLS_CODE.test(code) || TLS_CODE.test(e.message ?? "")) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `${context.operation}: TLS with ${where} failed (${code || detail})`,
      {
        source: "imap",
        cause: error,
        serverCode: code || undefined,
        retryable: false,
        hint: "Pass the server's CA as `ca` (the emulator prints where its CA file is), or check `secure` and `port`.",
      },
    );
  }
  if (
    ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"].includes(code) ||
    isConnectionDrop(error)
  ) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `${context.operation}: connection to ${where} failed (${code || detail})`,
      {
        source: "imap",
        cause: error,
        serverCode: code || undefined,
        hint: "Check `host` and `port` (outlook.office365.com:993 for Microsoft 365) and that outbound TCP 993 is allowed.",
      },
    );
  }
  if (
    /nonexistent|doesn't exist|does not exist|not found|unknown mailbox/i.test(detail) ||
    code === "NotFound"
  ) {
    return new M365MailError("NOT_FOUND", `${context.operation}: ${detail}`, {
      source: "imap",
      cause: error,
      hint: "Check the folder name with listFolders(); ids from before a folder was renumbered are no longer valid.",
    });
  }
  return new M365MailError("SERVER_ERROR", `${context.operation} failed: ${detail}`, {
    source: "imap",
    cause: error,
    serverCode: code || undefined,
    hint: "Retry later; if it persists, run verify() and check the server's answer above.",
  });
}

export function abortedError(operation: string, reason?: unknown): M365MailError {
  return new M365MailError("ABORTED", `${operation} was aborted`, { source: "imap", cause: reason });
}
