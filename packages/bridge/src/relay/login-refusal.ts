import { type ErrorCode, isM365MailError } from "@m365-mail/core";
import type { SessionResult } from "./client-session.js";

/** How a refused login is answered: the client's own words for it and the session's result. */
export interface LoginRefusal {
  /** "auth": the credentials or the account's sign-in (IMAP `AUTHENTICATIONFAILED`, POP3 `[AUTH]`); "unavailable": try later. */
  readonly kind: "auth" | "unavailable";
  /** One line, safe to show to the client: the error's message with its hint, never a secret. */
  readonly text: string;
  readonly result: SessionResult;
  readonly code: string;
}

// Errors that mean "try again later", not "your credentials or account are wrong".
const UNAVAILABLE: ReadonlySet<ErrorCode> = new Set([
  "THROTTLED",
  "SERVER_ERROR",
  "INVALID_RESPONSE",
  "TIMEOUT",
  "CONNECTION_FAILED",
  "ABORTED",
]);

const MAX_TEXT = 400;

/**
 * Classifies why a login failed — `authenticate()` refused it (`stage: "sign-in"`) or Microsoft 365's
 * server refused the token or could not be reached (`stage: "upstream"`) — into the answer for the client.
 */
export function describeLoginRefusal(error: unknown, stage: "sign-in" | "upstream"): LoginRefusal {
  if (!isM365MailError(error)) {
    return {
      kind: "unavailable",
      text: "The bridge failed; try again later.",
      result: "error",
      code: "internal",
    };
  }
  const unavailable = UNAVAILABLE.has(error.code);
  return {
    kind: unavailable ? "unavailable" : "auth",
    text: oneLine(error.message),
    result: stage === "upstream" ? "upstream-failed" : unavailable ? "error" : "auth-failed",
    code: error.code,
  };
}

const ASCII: Record<string, string> = {
  "—": "-",
  "–": "-",
  "→": "->",
  "…": "...",
  "‘": "'",
  "’": "'",
  "“": '"',
  "”": '"',
};

/**
 * A protocol line: no CR or LF, 7-bit (IMAP4rev1 and POP3 replies are US-ASCII, so the hints' dashes
 * and arrows are spelled in ASCII, anything else becomes "?"), long texts cut.
 */
export function oneLine(text: string): string {
  const flat = text
    .replace(/[\r\n\0\t]+/g, " ")
    .replace(/[^\x20-\x7e]/g, (c) => ASCII[c] ?? "?")
    .trim();
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT - 3)}...` : flat;
}
