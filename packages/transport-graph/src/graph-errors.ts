import { M365MailError, mentionsDailySendingLimit, readJwtClaims } from "@m365-mail/core";
import { grantedScopes, isGraphAudience } from "./graph-hosts.js";
import type { GraphOperation } from "./operations.js";

export const SOURCE = "graph";

/** What an error message needs to say which setting to change. */
export interface ErrorContext {
  readonly op: GraphOperation;
  /** The mailbox address, or undefined for the signed-in user's own mailbox (`/me`). */
  readonly sharedMailbox: string | undefined;
  /** Graph resource URI that prefixes scopes, e.g. https://graph.microsoft.com. */
  readonly graphResource: string;
  /** The access token the request carried (read for `aud`/`scp`, never printed). */
  readonly token?: string | undefined;
  readonly retryAfterSeconds?: number | undefined;
}

/** Graph's error body: `{"error":{"code","message","innerError":{...}}}`. */
export interface GraphErrorBody {
  error?: { code?: string; message?: string; innerError?: Record<string, unknown> };
}

const SEND_INVALID = new Set([
  "ErrorInvalidRecipients",
  "ErrorInvalidRecipientsForSendMail",
  "ErrorInvalidInternetHeaderChars",
  "ErrorInvalidProperty",
  "ErrorInvalidMimeContent",
  "RequestBodyRead",
  "BadRequest",
]);

/** Maps a non-2xx Graph answer (a response, or a `$batch` step) to the one error class. */
export function graphError(
  status: number,
  body: GraphErrorBody | undefined,
  context: ErrorContext,
  cause?: unknown,
): M365MailError {
  const serverCode = body?.error?.code;
  const serverMessage = body?.error?.message;
  const what = `${context.op.name} failed: HTTP ${status}${serverCode ? ` ${serverCode}` : ""}${serverMessage ? ` (${serverMessage})` : ""}`;
  const base = { source: SOURCE, status, serverCode, cause: cause ?? body };
  const permission = context.sharedMailbox ? context.op.sharedPermission : context.op.permission;

  if (mentionsDailySendingLimit(serverCode)) {
    // Whatever the status: Graph refused the send, and waiting minutes will not help.
    return new M365MailError("THROTTLED", `${what}; the mailbox reached its daily sending limit`, {
      ...base,
      retryable: false,
      requestSent: false,
      hint: "Exchange allows 10,000 recipients a day per mailbox, over Graph and SMTP together; sending resumes as the rolling 24 hours free up.",
    });
  }
  if (status === 401) {
    const audience = context.token ? readJwtClaims(context.token)?.aud : undefined;
    if (audience && !isGraphAudience(audience, context.graphResource)) {
      return new M365MailError(
        "WRONG_SCOPE",
        `${context.op.name} failed: the access token is for ${audience}, not Microsoft Graph`,
        {
          ...base,
          hint: `Request Graph scopes with the prefix ${context.graphResource}/ (for example ${context.graphResource}/${permission}), not ${audience.replace(/\/$/, "")}/…; one token never covers both Graph and Outlook.`,
        },
      );
    }
    return new M365MailError("AUTH_FAILED", `${what}; the token was refused again after a refresh`, {
      ...base,
      hint: "Check that the token provider signs in to the same cloud as the Graph host (tokens never cross clouds) and that the user can still sign in.",
    });
  }
  if (status === 403) {
    if (serverCode === "ErrorSendAsDenied") {
      return new M365MailError("SEND_AS_DENIED", what, {
        ...base,
        hint: `The signed-in user may not send as this address: give it Send As on the mailbox (Exchange admin center → Mailboxes → Delegation) and add ${permission} (App registration → API permissions → Grant admin consent).`,
      });
    }
    const granted = grantedScopes(context.token);
    const hasIt = granted?.includes(permission.toLowerCase());
    const consent = `App registration → API permissions → Add a permission → Microsoft Graph → Delegated permissions → ${permission} → Grant admin consent`;
    const delegation = context.sharedMailbox
      ? ` The signed-in user also needs access to ${context.sharedMailbox} (Exchange admin center → Mailboxes → ${context.sharedMailbox} → Delegation: Read and manage / Send as).`
      : "";
    return new M365MailError("ACCESS_DENIED", `${what}; it needs the delegated permission ${permission}`, {
      ...base,
      hint: hasIt
        ? `The token already carries ${permission}.${delegation || " Check the mailbox's permissions in the Exchange admin center."}`
        : `${consent}.${delegation}`,
    });
  }
  if (status === 404 || status === 410 || serverCode === "ErrorInvalidIdMalformed") {
    const mailboxHint = context.sharedMailbox
      ? ` Check the mailbox address ${context.sharedMailbox} too.`
      : "";
    return new M365MailError("NOT_FOUND", what, {
      ...base,
      hint: `The item, folder or mailbox does not exist (ids change when a message is moved).${mailboxHint}`,
    });
  }
  if (status === 413 || serverCode === "ErrorMessageSizeExceeded") {
    return new M365MailError("MESSAGE_TOO_LARGE", what, {
      ...base,
      hint: "Graph requests are limited to about 4 MB: send attachments as `attachments` (m365-mail uploads those over 3 MB in chunks), not inside raw MIME.",
    });
  }
  if (status === 429 || status === 503) {
    return new M365MailError("THROTTLED", `${what}; retries ran out`, {
      ...base,
      retryAfterSeconds: context.retryAfterSeconds,
      hint: "Outlook allows 4 concurrent requests and 10,000 requests per 10 minutes per mailbox: lower maxConcurrency or the request rate, or raise retry.maxWaitMs.",
    });
  }
  if (status === 400 && (context.op.name.includes("send") || context.op.name.includes("draft"))) {
    if (serverCode && !SEND_INVALID.has(serverCode) && !serverCode.startsWith("ErrorInvalid")) {
      return refused(what, base);
    }
    return new M365MailError("MESSAGE_INVALID", what, {
      ...base,
      hint: "Check the recipients, headers (Graph accepts only X- headers) and attachments.",
    });
  }
  if (status >= 500) {
    return new M365MailError("SERVER_ERROR", what, {
      ...base,
      hint: "Microsoft Graph had a problem; the request may succeed later.",
    });
  }
  if (status >= 400) return refused(what, base);
  return new M365MailError("SERVER_ERROR", what, { ...base, retryable: false });
}

/**
 * Any other 4xx: Graph answered and refused the request, so it did nothing with it — a refused send
 * was not submitted (`requestSent: false`, as for an SMTP 4xx/5xx reply) and must not be looked for
 * in Sent Items or reported as "may have been sent". Not retryable: the same request is refused again.
 */
function refused(
  what: string,
  base: { source: string; status: number; serverCode: string | undefined; cause: unknown },
): M365MailError {
  return new M365MailError("SERVER_ERROR", `${what}; Graph refused the request, nothing was done`, {
    ...base,
    retryable: false,
    requestSent: false,
    hint: `Graph did not send or change anything: fix what its answer (HTTP ${base.status}${base.serverCode ? ` ${base.serverCode}` : ""}) names — the request, or the mailbox's state such as a blocked sender or a full mailbox — then try again.`,
  });
}

export async function graphErrorFromResponse(
  response: Response,
  context: ErrorContext,
): Promise<M365MailError> {
  let body: GraphErrorBody | undefined;
  let text = "";
  try {
    text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (parsed && typeof parsed === "object") body = parsed as GraphErrorBody;
  } catch {
    // Not JSON (a proxy's HTML page, a truncated answer): keep the status, the text goes into `cause`.
  }
  return graphError(
    response.status,
    body,
    context,
    body ?? { status: response.status, body: text.slice(0, 500) },
  );
}
