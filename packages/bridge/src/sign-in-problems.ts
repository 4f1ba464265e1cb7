import { type ErrorCode, type Logger, M365MailError } from "@m365-mail/core";
import type { BridgeMetrics } from "./metrics.js";

/** Sign-in failures no retry can fix: a person must change a setting. */
const NEEDS_A_PERSON: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
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
  "PROTOCOL_DISABLED",
  "WRONG_SCOPE",
  // A device-code account without a usable stored sign-in: `m365-mail bridge login`.
  "SIGN_IN_REQUIRED",
  // The bridge's own settings for an account (a password file, a variable) are wrong.
  "CONFIG_INVALID",
]);

export interface SignInProblem {
  readonly account: string;
  readonly code: ErrorCode;
  readonly serverCode?: string;
  /** Safe to show: redacted by M365MailError. */
  readonly message: string;
  readonly hint?: string;
  readonly since: string;
}

export interface SignInProblems {
  /** Records an error if it needs a person; logs it and sends the webhook the first time only. */
  report(account: string, error: unknown): void;
  /** The account signed in fine again: the problem is over. */
  resolve(account: string): void;
  /** True while the account has a problem that needs a person. */
  isOpen(account: string): boolean;
  list(): SignInProblem[];
  setWebhook(url: string | undefined): void;
}

export function needsAPerson(error: unknown): error is M365MailError {
  return error instanceof M365MailError && NEEDS_A_PERSON.has(error.code);
}

export function createSignInProblems(options: {
  logger: Logger;
  metrics: BridgeMetrics;
  webhookUrl?: string;
  /** Called when an account's problem is over (the spool then sends what it held for it). */
  onResolved?: (account: string) => void;
}): SignInProblems {
  const open = new Map<string, SignInProblem>();
  let webhookUrl = options.webhookUrl;
  const post = (event: Record<string, unknown>) => {
    if (!webhookUrl) return;
    const url = webhookUrl;
    // Fire and forget with a deadline: a slow webhook must never hold up a login.
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(10_000),
    })
      .then((res) => {
        if (!res.ok) options.logger.warn(`webhook ${url} answered ${res.status} to a sign-in problem event`);
      })
      .catch((error: unknown) =>
        options.logger.warn(`webhook ${url} could not be reached (${(error as Error).message})`),
      );
  };
  return {
    report(account, error) {
      if (!needsAPerson(error)) return;
      const previous = open.get(account);
      if (previous?.code === error.code) return;
      const problem: SignInProblem = {
        account,
        code: error.code,
        ...(error.serverCode ? { serverCode: error.serverCode } : {}),
        message: error.message,
        ...(error.hint ? { hint: error.hint } : {}),
        since: new Date().toISOString(),
      };
      open.set(account, problem);
      if (previous) options.metrics.set("m365_bridge_sign_in_problems", { account, code: previous.code }, 0);
      options.metrics.set("m365_bridge_sign_in_problems", { account, code: error.code }, 1);
      options.logger.error(`sign-in problem for account ${account} needs a person: ${error.message}`, {
        code: error.code,
      });
      post({ type: "sign-in-problem", ...problem });
    },
    resolve(account) {
      const previous = open.get(account);
      if (!previous) return;
      open.delete(account);
      options.metrics.set("m365_bridge_sign_in_problems", { account, code: previous.code }, 0);
      options.logger.info(`account ${account} signs in again (${previous.code} resolved)`);
      post({ type: "sign-in-problem-resolved", account, code: previous.code, at: new Date().toISOString() });
      options.onResolved?.(account);
    },
    isOpen: (account) => open.has(account),
    list: () => [...open.values()],
    setWebhook(url) {
      webhookUrl = url;
    },
  };
}
