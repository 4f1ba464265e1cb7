import { type ErrorCode, type Logger, M365MailError } from "@m365-mail/core";
import type { BridgeMetrics } from "./metrics.js";
import type { Webhook } from "./webhook.js";

/**
 * Where a problem was met. "sign-in" is the account itself (MFA, password, lock, a missing `bridge
 * login`…): any successful sign-in ends it. The others are one use of a signed-in account — Graph
 * (its permissions), Exchange's SMTP, IMAP or POP3 (switched off for the mailbox, consent, scope) — and end
 * only when that use works again: a sign-in that works says nothing about whether the mailbox may use SMTP.
 */
export type ProblemArea = "sign-in" | "graph" | "smtp" | "imap" | "pop3";

/** What an account was doing: its token for (or a delivery over) Graph, or Exchange's SMTP, IMAP, POP3. */
export type AccountUse = Exclude<ProblemArea, "sign-in">;

/**
 * Failures no retry can fix: a person must change a setting. These are about the account as a whole
 * (area "sign-in")…
 */
const ACCOUNT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "MFA_REQUIRED",
  "PUBLIC_CLIENT_DISABLED",
  "USER_NOT_ASSIGNED",
  "ACCOUNT_LOCKED",
  "ACCOUNT_DISABLED",
  "PASSWORD_EXPIRED",
  "POLICY_BLOCKED",
  "TENANT_NOT_FOUND",
  "APP_NOT_FOUND",
  // A device-code account without a usable stored sign-in: `m365-mail bridge login`.
  "SIGN_IN_REQUIRED",
  // The bridge's own settings for an account (a password file, a variable) are wrong.
  "CONFIG_INVALID",
]);

/**
 * …and these about one use of it: consent or scope missing, SMTP AUTH/IMAP/POP switched off for the
 * mailbox, no access to a shared mailbox, Send As not given for an address the config lets it send as.
 */
const USE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "CONSENT_REQUIRED",
  "WRONG_SCOPE",
  "PROTOCOL_DISABLED",
  "ACCESS_DENIED",
  "SEND_AS_DENIED",
]);

/** How logs and `bridge status` name an area. */
export const AREA_NAMES: Readonly<Record<ProblemArea, string>> = {
  "sign-in": "sign-in",
  graph: "Graph",
  smtp: "SMTP",
  imap: "IMAP",
  pop3: "POP3",
};

export interface SignInProblem {
  readonly account: string;
  /** The Microsoft 365 user it is about: a catch-all account has one problem per user. */
  readonly user: string;
  readonly area: ProblemArea;
  readonly code: ErrorCode;
  readonly serverCode?: string;
  /** Safe to show: redacted by M365MailError. */
  readonly message: string;
  readonly hint?: string;
  readonly since: string;
}

export interface SignInProblems {
  /**
   * Records an error met while `use` was tried, if it needs a person; logs it and sends the webhook the
   * first time only. Its area is "sign-in" for an account-wide code or without `use`, else `use`.
   */
  report(account: string, user: string, error: unknown, use?: AccountUse): void;
  /**
   * Something worked: a sign-in (no `use`) ends the account's "sign-in" problem; a use that worked (a
   * delivery, an upstream login) ends that too, and the problem of that use.
   */
  succeeded(account: string, user: string, use?: AccountUse): void;
  /** True while the account has a problem that needs a person (in `area`, or in any). */
  isOpen(account: string, area?: ProblemArea): boolean;
  list(): SignInProblem[];
}

export function needsAPerson(error: unknown): error is M365MailError {
  return error instanceof M365MailError && (ACCOUNT_CODES.has(error.code) || USE_CODES.has(error.code));
}

export function createSignInProblems(options: {
  logger: Logger;
  metrics: BridgeMetrics;
  /** Where each problem, and its end, is posted once. */
  webhook?: Webhook;
  /** Called when an account's problem is over (the spool then sends what it held for it). */
  onResolved?: (account: string) => void;
}): SignInProblems {
  /**
   * Open problems by account, user and area: one per area, so a use's problem outlives a good sign-in,
   * and one per user, so one user of a catch-all account signing in does not end another's problem.
   */
  const open = new Map<string, SignInProblem>();
  const keyOf = (account: string, user: string, area: ProblemArea) =>
    `${area}\u0000${account}\u0000${user.toLowerCase()}`;
  // The gauge counts a catch-all account's users with the same problem.
  const gauge = (p: Pick<SignInProblem, "account" | "area" | "code">) => {
    let count = 0;
    for (const q of open.values())
      if (q.account === p.account && q.area === p.area && q.code === p.code) count++;
    options.metrics.set(
      "m365_bridge_sign_in_problems",
      { account: p.account, area: p.area, code: p.code },
      count,
    );
  };
  const who = (account: string, user: string) =>
    user.toLowerCase() === account.toLowerCase() ? `account ${account}` : `account ${account} (${user})`;
  return {
    report(account, user, error, use) {
      if (!needsAPerson(error)) return;
      const area: ProblemArea = use && !ACCOUNT_CODES.has(error.code) ? use : "sign-in";
      const key = keyOf(account, user, area);
      const previous = open.get(key);
      if (previous?.code === error.code) return;
      const problem: SignInProblem = {
        account,
        user,
        area,
        code: error.code,
        ...(error.serverCode ? { serverCode: error.serverCode } : {}),
        message: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
        since: new Date().toISOString(),
      };
      open.set(key, problem);
      if (previous) gauge(previous);
      gauge(problem);
      options.logger.error(
        `${AREA_NAMES[area]} problem for ${who(account, user)} needs a person: ${error.message}`,
        {
          code: error.code,
        },
      );
      options.webhook?.post({ type: "sign-in-problem", ...problem });
    },
    succeeded(account, user, use) {
      let ended = false;
      for (const area of use ? (["sign-in", use] as const) : (["sign-in"] as const)) {
        const key = keyOf(account, user, area);
        const previous = open.get(key);
        if (!previous) continue;
        open.delete(key);
        gauge(previous);
        options.logger.info(
          area === "sign-in"
            ? `${who(account, user)} signs in again (${previous.code} resolved)`
            : `${who(account, user)}: ${AREA_NAMES[area]} works again (${previous.code} resolved)`,
        );
        options.webhook?.post({
          type: "sign-in-problem-resolved",
          account,
          user: previous.user,
          area,
          code: previous.code,
          at: new Date().toISOString(),
        });
        ended = true;
      }
      if (ended) options.onResolved?.(account);
    },
    isOpen: (account, area) =>
      [...open.values()].some((p) => p.account === account && (area === undefined || p.area === area)),
    list: () => [...open.values()],
  };
}
