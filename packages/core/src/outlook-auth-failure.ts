import { CLOUDS, type CloudPreset } from "./clouds.js";
import { type ErrorCode, M365MailError, type M365MailErrorOptions } from "./errors.js";
import { readJwtClaims, type TokenClaims } from "./jwt.js";

/** The Exchange Online protocols that take an Outlook token over SASL XOAUTH2. */
export type OutlookProtocol = "imap" | "pop3" | "smtp";

export interface ExplainOutlookAuthFailureOptions {
  protocol: OutlookProtocol;
  /** The access token the server refused, or its claims. Only claims are read; it never reaches the message. */
  token: string | TokenClaims | undefined;
  /** The signed-in user: the token provider's `username`. */
  username: string;
  /** The `user=` of the SASL string: the signed-in user or a shared mailbox. @default username */
  mailbox?: string;
  /** The cloud the token was requested for (its Outlook resource names the scope in hints). @default CLOUDS.global */
  cloud?: CloudPreset;
  /** The component named in the message. @default protocol */
  source?: string;
  /** The original error (the server's refusal). */
  cause?: unknown;
  /** The server's answer, quoted in the message ("AUTHENTICATE failed.", "535 5.7.3 …"). */
  serverText?: string;
  /** Kept as the error's `serverCode` ("5.7.3"). */
  serverCode?: string;
  /** @default new Date() — to tell an expired token. */
  now?: Date;
}

interface ProtocolFacts {
  readonly label: string;
  readonly permission: string;
  readonly host: (cloud: CloudPreset) => string;
  /** The switch in Exchange admin center → … → Manage email apps, in each transport's established words. */
  readonly turnOn: string;
  /** What a delegate needs on a shared mailbox (Exchange admin center → … → Delegation). */
  readonly delegation: string;
  /** SMTP answers 5.7.139 when SMTP AUTH is off, so its bare refusal never means "turned off". */
  readonly saysWhenOff: boolean;
}

const PROTOCOLS: Readonly<Record<OutlookProtocol, ProtocolFacts>> = {
  imap: {
    label: "IMAP",
    permission: "IMAP.AccessAsUser.All",
    host: (cloud) => cloud.imap.host,
    turnOn: "IMAP: turn it on",
    delegation: "Read and manage (Full Access)",
    saysWhenOff: false,
  },
  pop3: {
    label: "POP3",
    permission: "POP.AccessAsUser.All",
    host: (cloud) => cloud.pop3.host,
    turnOn: "POP3 on",
    delegation: "Read and manage (Full Access)",
    saysWhenOff: false,
  },
  smtp: {
    label: "SMTP",
    permission: "SMTP.Send",
    host: (cloud) => cloud.smtp.host,
    turnOn: "Authenticated SMTP on",
    delegation: "Read and manage (Full Access) and Send as",
    saysWhenOff: true,
  },
};

// "Office 365 Exchange Online" and "Microsoft Graph" as app ids: v1 tokens and short scopes carry these as `aud`.
const OUTLOOK_APP_ID = "00000002-0000-0ff1-ce00-000000000000";
const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";

const normalise = (value: string) => value.replace(/\/+$/, "").toLowerCase();

/**
 * Explains a refused IMAP, POP3 or SMTP XOAUTH2 sign-in. Exchange gives one bare answer for every cause
 * (`NO AUTHENTICATE failed.`, `-ERR Authentication failure`, `535 5.7.3`): a Graph token (the short-scope
 * mistake), a missing permission, the protocol turned off, a shared mailbox the user may not open. The
 * refused token's claims tell most of them apart; what they cannot tell is named as possibilities.
 */
export function explainOutlookAuthFailure(options: ExplainOutlookAuthFailureOptions): M365MailError {
  const p = PROTOCOLS[options.protocol];
  const cloud = options.cloud ?? CLOUDS.global;
  const { username } = options;
  const mailbox = options.mailbox ?? username;
  const scope = `${cloud.outlookResource}/${p.permission}`;
  const base: M365MailErrorOptions = {
    source: options.source ?? options.protocol,
    cause: options.cause,
    ...(options.serverCode ? { serverCode: options.serverCode } : {}),
  };
  const refused = `${p.label} sign-in as ${mailbox} was refused${options.serverText ? ` (${options.serverText})` : ""}`;
  const emailApps = `Exchange admin center → Recipients → Mailboxes → ${mailbox} → Manage email apps → ${p.turnOn}`;
  const fail = (code: ErrorCode, message: string, hint: string, extra: M365MailErrorOptions = {}) =>
    new M365MailError(code, message, { ...base, ...extra, hint });

  // Exchange's throttling answer ("Request is throttled. Suggested Backoff Time: 299910 milliseconds";
  // "User is authenticated but not connected" for too many sessions) is no refusal of the token or the
  // account: "try later", not "change a setting".
  const throttled = throttlingIn(options.serverText);
  if (throttled) {
    const seconds = throttled.retryAfterSeconds;
    const wait = seconds === undefined ? "" : ` for about ${seconds} s`;
    return fail(
      "THROTTLED",
      `${refused}: Exchange Online is throttling ${mailbox}${wait}`,
      `Wait${wait || " a few minutes"} before signing in again, and open fewer ${p.label} sessions to ${mailbox} at once (close other clients of this mailbox).`,
      { retryable: true, ...(seconds === undefined ? {} : { retryAfterSeconds: seconds }) },
    );
  }

  const claims = typeof options.token === "string" ? readJwtClaims(options.token) : options.token;
  if (!claims) {
    const off = p.saysWhenOff ? "" : `${p.label} is turned off for the mailbox, `;
    return fail(
      "AUTH_FAILED",
      `${refused}; the access token is not a JWT, so its audience and scopes could not be checked. Possible causes: ` +
        `the token is not for ${cloud.outlookResource}, it lacks ${p.permission}, ${off}or ${username} has no access to ${mailbox}`,
      `Request ${scope}; in App registration → API permissions add ${p.permission} and Grant admin consent; in ${emailApps}.`,
    );
  }

  const audience = normalise(String(claims.aud ?? ""));
  const outlookAudiences = new Set([
    normalise(cloud.outlookResource),
    `https://${p.host(cloud)}`,
    ...Object.values(CLOUDS).map((c) => normalise(c.outlookResource)),
    "https://outlook.office365.com",
    OUTLOOK_APP_ID,
  ]);
  if (!outlookAudiences.has(audience)) {
    const isGraph =
      audience === normalise(cloud.graphEndpoint) || audience === GRAPH_APP_ID || audience.includes("graph.");
    return fail(
      "WRONG_SCOPE",
      `${refused}: the access token is for ${isGraph ? "Microsoft Graph" : `"${String(claims.aud ?? "no audience")}"`}, ` +
        `not for Exchange Online (${cloud.outlookResource}). This happens when the scope is requested as ` +
        `"${p.permission}" without its prefix`,
      `Request the scope with its prefix: ${scope} (the token provider's "outlook" resource). ` +
        `The short form ${p.permission} yields a Graph token.`,
    );
  }

  const scopes = typeof claims.scp === "string" ? claims.scp.split(" ").filter(Boolean) : [];
  const wanted = p.permission.toLowerCase();
  if (!scopes.some((s) => s.toLowerCase() === wanted || s.toLowerCase().endsWith(`/${wanted}`))) {
    return fail(
      "CONSENT_REQUIRED",
      `${refused}: the token has no ${p.permission} permission (it has: ${scopes.join(" ") || "none"})`,
      `App registration → API permissions → Add a permission → Office 365 Exchange Online → Delegated → ` +
        `${p.permission}, then Grant admin consent; and request ${scope}.`,
    );
  }

  const now = (options.now ?? new Date()).getTime();
  if (typeof claims.exp === "number" && claims.exp * 1000 <= now) {
    return fail(
      "AUTH_FAILED",
      `${refused}: the token provider returned an access token that has expired`,
      "Check the machine's clock; the token provider must hand out a fresh token when forceRefresh is set.",
      { retryable: true },
    );
  }

  const claimed = claims.upn ?? claims.preferred_username ?? claims.unique_name;
  const tokenUser = typeof claimed === "string" && claimed ? claimed : username;
  if (tokenUser.toLowerCase() !== mailbox.toLowerCase()) {
    if (mailbox.toLowerCase() !== username.toLowerCase()) {
      // Shared mailbox: user= is the shared address, the token is the delegate's.
      const off = p.saysWhenOff ? "" : `, or ${p.label} is turned off for ${mailbox}`;
      return fail(
        "ACCESS_DENIED",
        `${refused}: Exchange refused user=${mailbox} with ${tokenUser}'s token. ${tokenUser} may lack the ` +
          `${p.delegation} permission on ${mailbox}${off}`,
        `Exchange admin center → Recipients → Mailboxes → ${mailbox} → Delegation → ${p.delegation}: add ` +
          `${tokenUser}; and ${mailbox} → Manage email apps → ${p.turnOn}. Or leave \`mailbox\` unset to use ` +
          `${tokenUser}'s own mailbox.`,
      );
    }
    return fail(
      "AUTH_FAILED",
      `${refused}: the access token belongs to ${tokenUser}, not to ${mailbox}`,
      "Use a token provider signed in as the mailbox owner, or set `mailbox` for a shared mailbox.",
    );
  }

  if (p.saysWhenOff) {
    return fail(
      "AUTH_FAILED",
      `${refused} although the token is for Exchange Online and has ${p.permission}: it may have been revoked, ` +
        `or Exchange did not accept it`,
      `Check ${emailApps}, and that ${p.permission} has admin consent (App registration → API permissions → ` +
        `Grant admin consent).`,
    );
  }
  // Exchange gives this same answer when the protocol is off and when it refuses the sign-in itself.
  return fail(
    "PROTOCOL_DISABLED",
    `${refused} although the token is for Exchange Online and has ${p.permission}: ${p.label} is most likely turned ` +
      `off for ${mailbox} (other possible causes: the mailbox has no Exchange Online licence, or the tenant's CAS ` +
      `mailbox plan disables ${p.label})`,
    `${emailApps}.`,
  );
}

/**
 * Exchange's throttling answers over IMAP and POP3 ("Request is throttled. Suggested Backoff Time: N
 * milliseconds"; too many sessions), with the suggested back-off when it names one — in milliseconds
 * as Exchange says it, and in whole seconds (at least 1) for `retryAfterSeconds`.
 */
export function throttlingIn(
  serverText: string | undefined,
): { backoffMs?: number; retryAfterSeconds?: number } | undefined {
  if (!serverText || !/\bthrottl|too many connections|authenticated but not connected/i.test(serverText))
    return undefined;
  const backoff = /Backoff Time:\s*(\d+)\s*(?:ms|milliseconds)?/i.exec(serverText);
  if (!backoff) return {};
  const backoffMs = Number(backoff[1]);
  return { backoffMs, retryAfterSeconds: Math.max(1, Math.ceil(backoffMs / 1000)) };
}
