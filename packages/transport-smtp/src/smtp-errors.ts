import {
  type CloudPreset,
  explainOutlookAuthFailure,
  M365MailError,
  mentionsDailySendingLimit,
  readJwtClaims,
  requestNotSent,
  type TokenClaims,
} from "@m365-mail/core";

export const SOURCE = "smtp";

/** What the last token handed to Exchange said about itself (its claims) — never the token. Used to explain a 535. */
export type TokenFacts = TokenClaims;

export function tokenFacts(token: string): TokenFacts | undefined {
  return readJwtClaims(token);
}

export interface FailureContext {
  /** The mailbox in `user=` (a shared mailbox, or the signed-in user). */
  mailbox: string;
  /** Whose tokens the provider hands out. */
  signedInUser: string;
  host: string;
  port: number;
  token?: TokenFacts | undefined;
  /** Names the Outlook scope in hints. @default the global cloud */
  cloud?: CloudPreset;
}

/** The fields nodemailer's errors carry (and our verify probe's). */
export interface SmtpLikeError extends Error {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  /** A typed error from the token provider, carried through nodemailer untouched. */
  m365Error?: M365MailError;
}

/** "5.7.139" from "535 5.7.139 Authentication unsuccessful, …". */
export function enhancedCode(response: string | undefined): string | undefined {
  return /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(response ?? "")?.[1];
}

const ENABLE_SMTP_AUTH_MAILBOX = (user: string) =>
  `Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps → Authenticated SMTP`;
const ENABLE_SMTP_AUTH_TENANT =
  "Microsoft 365 admin center → Settings → Org settings → Mail flow → Turn off SMTP AUTH protocol for your organization: off";

const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

/**
 * Turns a nodemailer (or probe) failure into M365MailError with Exchange Online's meaning and a hint
 * in the set-up guide's words. Server replies are kept in the message (they hold no secrets).
 */
/** nodemailer's names for the steps before the message body is sent (its replies say so). */
const BEFORE_DATA = /^(EHLO|HELO|LHLO|STARTTLS|AUTH\b|MAIL FROM|RCPT TO)/;
/**
 * nodemailer names "CONN" every failure of the connection, also one that drops it after the message's
 * final dot, before Exchange's answer. Only these are known to have happened before anything was sent:
 * no connection at all, no TLS, no greeting.
 */
const CONNECT_ERRNOS = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);
const beforeConnected = (e: SmtpLikeError) =>
  e.code === "ETLS" ||
  e.code === "EDNS" ||
  TLS_CODES.has(e.originalCode ?? "") ||
  CONNECT_ERRNOS.has(e.originalCode ?? "") ||
  /^(Connection timeout|Greeting never received|Invalid greeting|TLS handshake timed out)/.test(
    e.message ?? "",
  );

/**
 * Maps a nodemailer (or token provider) error to the one error class. A failure before DATA — no
 * connection, TLS, sign-in, the envelope — or a refusal Exchange answered (4xx/5xx, also at the end of
 * data) is marked `requestSent: false`: Exchange did not take the message, so a caller may send it again
 * without looking in Sent Items. A connection that dropped or went silent is not: the message may have
 * been accepted with its answer lost.
 */
export function toSendError(error: unknown, ctx: FailureContext): M365MailError {
  const mapped = toM365Error(error, ctx);
  const e = error as SmtpLikeError;
  const notTaken =
    e?.m365Error !== undefined ||
    BEFORE_DATA.test(e?.command ?? "") ||
    (e?.command === "CONN" && beforeConnected(e)) ||
    // Exchange answered with a refusal (4xx/5xx), also to the final dot: it did not take the message.
    typeof e?.responseCode === "number";
  return notTaken ? requestNotSent(mapped, "the message was not sent") : mapped;
}

export function toM365Error(error: unknown, ctx: FailureContext): M365MailError {
  if (error instanceof M365MailError) return error;
  const e = (error ?? {}) as SmtpLikeError;
  if (e.m365Error) return e.m365Error;
  const response = typeof e.response === "string" ? e.response.trim() : undefined;
  const code = e.responseCode;
  const serverCode = enhancedCode(response);
  const base = { source: SOURCE, cause: error, serverCode } as const;
  const where = `${ctx.host}:${ctx.port}`;

  if (e.name === "AbortError" || e.code === "ABORT_ERR" || e.code === "EABORT") {
    return new M365MailError("ABORTED", "the SMTP operation was aborted", { source: SOURCE, cause: error });
  }

  if (code !== undefined && response) {
    if (serverCode === "5.7.139" || /SmtpClientAuthentication is disabled/i.test(response)) {
      const tenant = /for the Tenant/i.test(response);
      return new M365MailError(
        "PROTOCOL_DISABLED",
        `SMTP AUTH is turned off for the ${tenant ? "tenant" : "mailbox"} (${response})`,
        {
          ...base,
          hint: tenant
            ? `Enable SMTP AUTH for the tenant (${ENABLE_SMTP_AUTH_TENANT}) and for the mailbox (${ENABLE_SMTP_AUTH_MAILBOX(ctx.signedInUser)}); Security Defaults turn it off for everyone.`
            : `Enable SMTP AUTH for the mailbox (${ENABLE_SMTP_AUTH_MAILBOX(ctx.signedInUser)}) or the tenant (${ENABLE_SMTP_AUTH_TENANT}); Security Defaults turn it off.`,
        },
      );
    }
    if (code === 535) return authRefused(response, ctx, base);
    if (code === 530) {
      return new M365MailError(
        "AUTH_FAILED",
        `Exchange says the session is not authenticated (${response})`,
        {
          ...base,
          hint: "Authenticate with XOAUTH2 after STARTTLS before sending; check that SMTP AUTH is on (Manage email apps → Authenticated SMTP).",
        },
      );
    }
    if (serverCode === "5.2.252" || /SendAsDenied/i.test(response)) {
      const from = /not allowed to send as (\S+?);/i.exec(response)?.[1];
      return new M365MailError(
        "SEND_AS_DENIED",
        `${ctx.mailbox} may not send as ${from ?? "the From address"} (${response})`,
        {
          ...base,
          hint: `Send from ${ctx.mailbox} (leave \`from\` unset), or grant Send As: Exchange admin center → Recipients → Mailboxes → ${from ?? "<from mailbox>"} → Delegation → Send as → add ${ctx.signedInUser}.`,
        },
      );
    }
    if (code === 432 || serverCode === "4.3.2") {
      return new M365MailError("THROTTLED", `Exchange refused a concurrent connection (${response})`, {
        ...base,
        hint: "Exchange allows 3 SMTP connections per mailbox at once: keep maxConnections at 3 or less, counting every process that sends as this mailbox.",
      });
    }
    if (/submission rate|rate limit/i.test(response) || serverCode === "4.4.2") {
      return new M365MailError(
        "THROTTLED",
        `Exchange deferred the message: too many per minute (${response})`,
        {
          ...base,
          hint: "Exchange accepts 30 messages a minute per mailbox: keep maxMessagesPerMinute at 30 or less.",
        },
      );
    }
    if (mentionsDailySendingLimit(response)) {
      return new M365MailError("THROTTLED", `the mailbox reached its daily sending limit (${response})`, {
        ...base,
        retryable: false,
        hint: "Exchange allows 10,000 recipients a day per mailbox; sending resumes after 24 hours.",
      });
    }
    if (code === 552 || serverCode === "5.3.4") {
      return new M365MailError("MESSAGE_TOO_LARGE", `the message is too large for Exchange (${response})`, {
        ...base,
        hint: "SMTP submission takes up to 35 MB (with encoding); send large files via Graph's upload session.",
      });
    }
    if (e.code === "EENVELOPE" && code >= 500) {
      return new M365MailError("MESSAGE_INVALID", `Exchange refused the envelope (${response})`, {
        ...base,
        hint: "Check the sender and recipient addresses.",
      });
    }
    if (code >= 400 && code < 500) {
      return new M365MailError("SERVER_ERROR", `Exchange deferred the command (${response})`, {
        ...base,
        retryable: true,
        hint: "A temporary failure: the transport retries it with backoff; raise `retry.attempts` if it persists.",
      });
    }
    return new M365MailError("SERVER_ERROR", `Exchange refused the command (${response})`, {
      ...base,
      retryable: false,
      hint: "A permanent refusal: sending the same message again will fail the same way.",
    });
  }

  const sysCode = e.originalCode ?? e.code;
  if (sysCode && TLS_CODES.has(sysCode)) {
    return new M365MailError(
      "CONNECTION_FAILED",
      `the TLS certificate of ${where} is not trusted (${e.message})`,
      {
        source: SOURCE,
        cause: error,
        retryable: false,
        hint: "Trust the server's CA: pass `ca` (for the emulator, its CA file) or start Node with NODE_EXTRA_CA_CERTS.",
      },
    );
  }
  if (e.code === "ETLS" || /STARTTLS/i.test(e.message ?? "")) {
    return new M365MailError("CONNECTION_FAILED", `STARTTLS failed with ${where} (${e.message})`, {
      source: SOURCE,
      cause: error,
      retryable: false,
      hint: "Use smtp.office365.com port 587 (STARTTLS); port 25 and 465 are not client submission.",
    });
  }
  if (e.code === "ETIMEDOUT" || sysCode === "ETIMEDOUT") {
    return new M365MailError("TIMEOUT", `${where} did not answer in time`, {
      source: SOURCE,
      cause: error,
      hint: "Raise timeoutMs, or check that outbound port 587 is open (many networks block it).",
    });
  }
  if (e.code === "EAUTH") {
    return new M365MailError("AUTH_FAILED", `XOAUTH2 sign-in did not complete (${e.message})`, {
      source: SOURCE,
      cause: error,
      hint: "Check the token provider's configuration (tenant, client id, user) and SMTP.Send in API permissions.",
    });
  }
  return new M365MailError("CONNECTION_FAILED", `cannot reach ${where} (${e.message ?? String(error)})`, {
    source: SOURCE,
    cause: error,
    hint: "Check host and port (smtp.office365.com:587 for the global cloud), DNS and that outbound port 587 is open.",
  });
}

/** 535 5.7.3: Exchange does not say why; the token's own claims usually do (core's explainOutlookAuthFailure). */
function authRefused(
  response: string,
  ctx: FailureContext,
  base: { source: string; cause: unknown; serverCode: string | undefined },
): M365MailError {
  return explainOutlookAuthFailure({
    protocol: "smtp",
    token: ctx.token,
    username: ctx.signedInUser,
    mailbox: ctx.mailbox,
    source: base.source,
    cause: base.cause,
    serverText: response,
    ...(ctx.cloud ? { cloud: ctx.cloud } : {}),
    ...(base.serverCode ? { serverCode: base.serverCode } : {}),
  });
}
