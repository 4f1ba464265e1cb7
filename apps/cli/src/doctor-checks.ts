import type { SignInRoute } from "@m365-mail/auth-ropc";
import {
  type ErrorCode,
  isM365MailError,
  M365MailError,
  type Mailbox,
  type VerifyCheck,
  type VerifyReport,
} from "@m365-mail/core";
import type { ResolvedConfig } from "./config.js";
import { errorJson } from "./output.js";
import type { Session } from "./session.js";
import { type TokenInfo, tokenInfo } from "./token-info.js";

// doctor's checks: what is verified and the fix for each failure. Rendering lives in doctor-render.ts.

export type CheckId = "sign-in" | "calendar" | "mail-read" | "mail-send" | "smtp" | "imap" | "pop3";
export type CheckStatus = "pass" | "fail" | "skip";

/** One row of the set-up guide's permission table, checked. */
export interface DoctorCheck {
  id: CheckId;
  /** The capability in the guide's words. */
  capability: string;
  permission: string;
  via: "Graph" | "SMTP" | "IMAP" | "POP3";
  status: CheckStatus;
  /** What was done (the request or command), and what came back. */
  checked: string;
  /** Set when the check could not run because an earlier one failed. */
  blockedBy?: CheckId;
  /** The setting to change, in the guide's words. */
  fix?: string;
  error?: Record<string, unknown>;
}

export interface DoctorReport {
  ok: boolean;
  user: string;
  tenantId: string;
  clientId: string;
  cloud: string;
  authorityHost: string;
  tokens: { graph?: TokenInfo; outlook?: TokenInfo };
  /** How the password became tokens: the user's realm and, for a federated (AD FS) user, the endpoint. */
  signIn?: SignInRoute;
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  /** Also check POP3 (`--pop3`). */
  pop3: boolean;
  /** Send a real test message over Graph and SMTP to this address (`--send-test`). */
  sendTest?: string;
  signal?: AbortSignal;
  /** Protocols that cannot be checked here, with the reason (the demo without Dovecot). */
  unavailable?: Partial<Record<"imap" | "pop3", string>>;
  /** Called when a step starts, for progress display. */
  onStep?: (label: string) => void;
  /** Called as each check is decided, in table order. */
  onCheck?: (check: DoctorCheck) => void;
}

// The rows of the guide's table ("Sample Of Related App API Permissions"), plus POP3 on request.
const ROWS: Record<CheckId, Pick<DoctorCheck, "capability" | "permission" | "via">> = {
  "sign-in": { capability: "Get an auth token via the ROPC flow", permission: "User.Read", via: "Graph" },
  calendar: { capability: "Read the user's calendar", permission: "Calendars.Read", via: "Graph" },
  "mail-read": { capability: "Read the user's mailFolders", permission: "Mail.Read", via: "Graph" },
  "mail-send": { capability: "Send mail with the Graph API", permission: "Mail.Send", via: "Graph" },
  smtp: { capability: "Send mail via SMTP auth'ed w/XOAUTH2", permission: "SMTP.Send", via: "SMTP" },
  imap: {
    capability: "Use IMAP authenticated with XOAUTH2",
    permission: "IMAP.AccessAsUser.All",
    via: "IMAP",
  },
  pop3: {
    capability: "Use POP3 authenticated with XOAUTH2",
    permission: "POP.AccessAsUser.All",
    via: "POP3",
  },
};

// Sign-in refusals that no other resource or protocol can get past: don't try the password again.
const ACCOUNT_LEVEL: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "AUTH_FAILED",
  "MFA_REQUIRED",
  "PUBLIC_CLIENT_DISABLED",
  "USER_NOT_ASSIGNED",
  "ACCOUNT_LOCKED",
  "ACCOUNT_DISABLED",
  "PASSWORD_EXPIRED",
  "POLICY_BLOCKED",
  "TENANT_NOT_FOUND",
  "APP_NOT_FOUND",
  "USER_NOT_FOUND",
  "CONFIG_INVALID",
  "CONNECTION_FAILED",
  "TIMEOUT",
  "ABORTED",
  "SIGN_IN_REQUIRED",
  "REFRESH_EXPIRED",
]);

const MANAGE_EMAIL_APPS = (user: string, app: string) =>
  `Exchange admin center → Recipients → Mailboxes → ${user} → Manage email apps → ${app}: on`;

/** The setting to change for a failed check, in the words of the set-up guide. */
export function fixFor(
  id: CheckId,
  error: M365MailError,
  user: string,
  grantedScopes?: readonly string[],
): string | undefined {
  const { permission } = ROWS[id];
  const api =
    id === "smtp" || id === "imap" || id === "pop3" ? "Office 365 Exchange Online" : "Microsoft Graph";
  const consent = `App registration → API permissions → + Add a permission → ${api} → Delegated permissions → ${permission}, then ✓ Grant admin consent (ROPC cannot show a consent prompt)`;
  switch (error.code) {
    case "PUBLIC_CLIENT_DISABLED":
      return 'App registration → Authentication → Advanced settings → Allow public client flows ("Enable the following mobile and desktop flows"): Yes';
    case "USER_NOT_ASSIGNED":
      return `Enterprise application → Users and groups → + Add user/group → ${user} (Enterprise application → Properties → Assignment required? is Yes, so only assigned users can sign in)`;
    case "MFA_REQUIRED":
      return `ROPC cannot do MFA: exclude ${user} from MFA (per-user MFA, Conditional Access policies that require MFA, Security Defaults) — or use the device code provider instead, which can: run \`m365-mail login --device-code\` once (a person approves with MFA), then --auth device-code / M365_AUTH=device-code`;
    case "CONSENT_REQUIRED":
      return consent;
    case "ACCESS_DENIED": {
      const has = grantedScopes?.some((s) => s.toLowerCase() === permission.toLowerCase());
      return has ? error.hint : consent;
    }
    case "PROTOCOL_DISABLED":
      if (id === "smtp") {
        return `${MANAGE_EMAIL_APPS(user, "Authenticated SMTP")} (SMTP AUTH can also be off for the whole organisation — Exchange admin center → Settings → Mail flow — or by Security Defaults)`;
      }
      if (id === "imap") return MANAGE_EMAIL_APPS(user, "IMAP");
      if (id === "pop3") return MANAGE_EMAIL_APPS(user, "POP");
      return error.hint;
    default:
      return error.hint;
  }
}

export const SAML_NAMES: Record<string, string> = {
  "urn:ietf:params:oauth:grant-type:saml1_1-bearer": "SAML 1.1",
  "urn:ietf:params:oauth:grant-type:saml2-bearer": "SAML 2.0",
};

/** The sign-in step in words: which grant at which host, and AD FS's part for a federated user. */
export function describeSignIn(route: SignInRoute | undefined, authorityHost: string): string {
  if (!route || route.method === "password") {
    const realm = route?.realm ? ` (realm ${route.realm}${route.domain ? ` ${route.domain}` : ""})` : "";
    const fallback = route?.fallbackReason ? `, ${route.fallbackReason}` : "";
    return `password grant at ${authorityHost}${realm}${fallback}`;
  }
  const realm = `realm Federated (${route.domain ?? "federated domain"})`;
  if (!route.adfsEndpoint) return `${realm}: reading the AD FS metadata (MEX)`;
  const adfs = `${realm}: WS-Trust ${route.wsTrustVersion} at AD FS ${route.adfsEndpoint}`;
  // Not "bearer …" in text: redaction takes a word after "bearer" for a token.
  const saml = route.grantType ? SAML_NAMES[route.grantType] : undefined;
  return saml ? `${adfs}, ${saml} assertion redeemed at ${authorityHost}` : adfs;
}

const asError = (error: unknown, source: string): M365MailError =>
  isM365MailError(error)
    ? error
    : new M365MailError("SERVER_ERROR", error instanceof Error ? error.message : String(error), {
        source,
        cause: error,
      });

/**
 * Walks the permission table: one password grant, one refresh grant, then a real round trip per
 * capability. Nothing is sent unless `sendTest` is set. Never throws for a failed check.
 */
export async function runDoctor(
  config: ResolvedConfig,
  session: Session,
  options: DoctorOptions,
): Promise<DoctorReport> {
  const { auth, mailbox } = session;
  const user = auth.username;
  const checks: DoctorCheck[] = [];
  const tokens: DoctorReport["tokens"] = {};
  const step = options.onStep ?? (() => {});
  const signal = options.signal;
  const add = (check: DoctorCheck) => {
    checks.push(check);
    options.onCheck?.(check);
  };
  const failed = (
    id: CheckId,
    checked: string,
    error: M365MailError,
    scopes?: readonly string[],
  ): DoctorCheck => ({
    id,
    ...ROWS[id],
    status: "fail",
    checked,
    fix: fixFor(id, error, user, scopes),
    error: errorJson(error),
  });
  const blocked = (id: CheckId, by: CheckId, why: string): DoctorCheck => ({
    id,
    ...ROWS[id],
    status: "fail",
    checked: `not checked: ${why}`,
    blockedBy: by,
  });

  // 1. The password grant (Graph), then the refresh grant (Outlook): their claims are shown either way.
  const grant =
    config.auth === "device-code" ? "stored device-code sign-in (refresh grant)" : "password grant";
  step(`signing in as ${user} (${grant} at ${config.cloud.authorityHost})`);
  let graphError: M365MailError | undefined;
  try {
    tokens.graph = tokenInfo(await auth.getAccessToken("graph", { signal }));
  } catch (error) {
    graphError = asError(error, "auth-ropc");
  }
  let outlookError: M365MailError | undefined;
  if (graphError && ACCOUNT_LEVEL.has(graphError.code)) outlookError = graphError;
  else {
    step("getting an Outlook token (SMTP, IMAP, POP3)");
    try {
      tokens.outlook = tokenInfo(await auth.getAccessToken("outlook", { signal }));
    } catch (error) {
      outlookError = asError(error, "auth-ropc");
    }
  }
  const signInFailedForAll = outlookError !== undefined && outlookError === graphError;
  const route = "signInRoute" in auth ? auth.signInRoute() : undefined;
  const signInText = describeSignIn(route, config.cloud.authorityHost);

  // 2. Graph: /me, the Inbox, a day of calendar, Mail.Send from the token (or a real send).
  const graphScopes = tokens.graph?.scopes;
  if (graphError) {
    add(
      failed(
        "sign-in",
        route?.method === "saml-bearer" || route?.realm === "Federated"
          ? `sign-in of ${user}: ${signInText}`
          : `${grant} for ${user} at ${config.cloud.authorityHost}`,
        graphError,
      ),
    );
    for (const id of ["calendar", "mail-read", "mail-send"] as const)
      add(blocked(id, "sign-in", "no Graph token (sign-in failed)"));
  } else {
    step("checking Microsoft Graph (GET /me, the Inbox, the calendar)");
    const report = await verifySafely(mailbox, "graph", signal);
    const find = (name: string) => report.checks.find((c) => c.name === name);
    const fromVerify = (id: CheckId, check: VerifyCheck | undefined, prefix = ""): DoctorCheck => {
      if (!check)
        return { id, ...ROWS[id], status: "fail", checked: "the Graph transport did not report this check" };
      if (check.ok) return { id, ...ROWS[id], status: "pass", checked: prefix + check.detail };
      return failed(id, prefix + check.detail, asError(check.error, "graph"), graphScopes);
    };
    const me = find("User.Read");
    add(
      fromVerify(
        "sign-in",
        me,
        `${config.auth === "device-code" ? `${grant} at ${config.cloud.authorityHost}` : signInText}, then `,
      ),
    );
    add(fromVerify("calendar", find("Calendars.Read")));
    add(fromVerify("mail-read", find("Mail.Read")));
    if (options.sendTest) {
      step(`sending a test message to ${options.sendTest} over Graph`);
      add(
        await sendTest(mailbox, "graph", options.sendTest, signal, (c, e) =>
          failed("mail-send", c, e, graphScopes),
        ),
      );
    } else {
      add(fromVerify("mail-send", find("Mail.Send")));
    }
  }

  // 3. The mail protocols, each with a real command after AUTH.
  const protocols: Array<{ id: "smtp" | "imap" | "pop3"; transport: string; where: string }> = [
    { id: "smtp", transport: "smtp", where: `${config.cloud.smtp.host}:${config.cloud.smtp.port}` },
    { id: "imap", transport: "imap", where: `${config.cloud.imap.host}:${config.cloud.imap.port}` },
    { id: "pop3", transport: "pop3", where: `${config.cloud.pop3.host}:${config.cloud.pop3.port}` },
  ];
  for (const { id, transport, where } of protocols) {
    const unavailable = id === "smtp" ? undefined : options.unavailable?.[id];
    if (unavailable) {
      add({ id, ...ROWS[id], status: "skip", checked: unavailable });
      continue;
    }
    if (id === "pop3" && !options.pop3) {
      add({ id, ...ROWS[id], status: "skip", checked: "not asked (add --pop3)" });
      continue;
    }
    if (outlookError) {
      add(
        signInFailedForAll
          ? blocked(id, "sign-in", "no Outlook token (sign-in failed)")
          : failed(
              id,
              `refresh grant for an Outlook token (${ROWS[id].permission})`,
              outlookError,
              tokens.outlook?.scopes,
            ),
      );
      continue;
    }
    step(`checking ${ROWS[id].via} at ${where}`);
    const report = await verifySafely(mailbox, transport, signal);
    const bad = report.checks.find((c) => !c.ok);
    if (bad) {
      add(
        failed(
          id,
          bad.detail.includes(where) ? bad.detail : `${bad.detail} at ${where}`,
          asError(bad.error, transport),
          tokens.outlook?.scopes,
        ),
      );
      continue;
    }
    const detail = report.checks.map((c) => c.detail).join("; ");
    if (id === "smtp" && options.sendTest) {
      step(`sending a test message to ${options.sendTest} over SMTP`);
      add(
        await sendTest(
          mailbox,
          "smtp",
          options.sendTest,
          signal,
          (c, e) => failed("smtp", c, e, tokens.outlook?.scopes),
          `${detail}; `,
        ),
      );
      continue;
    }
    add({ id, ...ROWS[id], status: "pass", checked: detail });
  }

  return {
    ok: checks.every((c) => c.status !== "fail"),
    user,
    tenantId: config.tenantId ?? "",
    clientId: config.clientId ?? "",
    cloud: config.cloud.name,
    authorityHost: config.cloud.authorityHost,
    tokens,
    ...(route ? { signIn: route } : {}),
    checks,
  };
}

async function verifySafely(mailbox: Mailbox, name: string, signal?: AbortSignal): Promise<VerifyReport> {
  try {
    return await mailbox.transport(name).verify({ ...(signal ? { signal } : {}) });
  } catch (error) {
    // verify() should report, not throw; if it throws anyway the line still gets a reason.
    return {
      transport: name,
      ok: false,
      checks: [{ name, ok: false, detail: "verify", error: asError(error, name) }],
    };
  }
}

async function sendTest(
  mailbox: Mailbox,
  via: "graph" | "smtp",
  to: string,
  signal: AbortSignal | undefined,
  failed: (checked: string, error: M365MailError) => DoctorCheck,
  prefix = "",
): Promise<DoctorCheck> {
  const id: CheckId = via === "graph" ? "mail-send" : "smtp";
  try {
    const result = await mailbox.send(
      {
        to,
        subject: `m365-mail doctor: test message over ${via === "graph" ? "Graph" : "SMTP"}`,
        text: `This message was sent by \`m365-mail doctor --send-test\` as ${mailbox.auth.username} over ${via}.`,
      },
      { via, ...(signal ? { signal } : {}) },
    );
    return {
      id,
      ...ROWS[id],
      status: "pass",
      checked: `${prefix}sent a test message to ${to} (${result.messageId})`,
    };
  } catch (error) {
    return failed(`${prefix}send a test message to ${to}`, asError(error, via));
  }
}
