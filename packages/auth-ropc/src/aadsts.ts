import type { ErrorCode } from "@m365-mail/core";

/** What a hint may name: filled in from the provider's options. */
export interface AadstsHintContext {
  username?: string;
  tenantId?: string;
  clientId?: string;
  /** Which grant was refused: `saml-bearer` when Entra ID refused an assertion AD FS issued. */
  grant?: "password" | "saml-bearer";
}

/** One row of the table: which M365MailError code an AADSTS number becomes, and what to change. */
export interface AadstsEntry {
  readonly code: ErrorCode;
  /** Short meaning, e.g. "MFA required". */
  readonly title: string;
  readonly hint: (context: AadstsHintContext) => string;
}

const user = (c: AadstsHintContext) => c.username ?? "the user";
const domainOf = (c: AadstsHintContext) => c.username?.split("@")[1] ?? "the federated domain";

// Entra ID refusing the assertion AD FS issued: AD FS accepted the password, so the federation trust
// between AD FS and Entra ID (or the clocks) is what to change. Meanings: the AADSTS reference (50006
// InvalidSignature, 50008 InvalidSamlToken, 50013 InvalidAssertion, 50107 InvalidRealmUri); fixes:
// "Renew federation certificates for Microsoft 365 and Microsoft Entra ID" (how-to-connect-fed-o365-certs)
// and "The requested federation realm object does not exist" (IssuerUri mismatch).
const ASSERTION_REFUSED = "the password was accepted by AD FS";
const SIGNING_CERTIFICATE = (c: AadstsHintContext) =>
  `compare the AD FS token-signing certificate (Get-AdfsCertificate -CertificateType Token-Signing) with the domain's federation settings in Entra ID (Get-MgDomainFederationConfiguration for ${domainOf(c)}: SigningCertificate, NextSigningCertificate) and update them (Update-MgDomainFederationConfiguration, or repair the trust in Microsoft Entra Connect) — typical after a certificate rollover that Entra ID could not read from AD FS's federation metadata`;

// Hints use the set-up guide's words (shared/seed/ms-graph-ropc-auth-flows.txt) so a person can
// find the switch. Source of the numbers: https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
const MFA: AadstsEntry = {
  code: "MFA_REQUIRED",
  title: "multi-factor authentication is required",
  hint: (c) =>
    `ROPC cannot do MFA: exclude ${user(c)} from per-user MFA and from every Conditional Access policy that requires MFA (Security Defaults require it for everyone), or sign in once with the device code flow instead (@m365-mail/auth-device-code; \`m365-mail login --device-code\`, then M365_AUTH=device-code).`,
};
const POLICY: AadstsEntry = {
  code: "POLICY_BLOCKED",
  title: "a Conditional Access policy or Security Defaults block this sign-in",
  hint: (c) =>
    `Exclude ${user(c)} (or this app registration) from the Conditional Access policy that blocks it, or turn off Security Defaults; ROPC cannot answer any extra challenge.`,
};
const REFRESH: AadstsEntry = {
  code: "REFRESH_EXPIRED",
  title: "the refresh token expired or was revoked",
  hint: () =>
    "Nothing to change: m365-mail signs in with the password again. If it keeps happening, check the sign-in frequency policy and whether the user's sessions are being revoked.",
};
const CONSENT: AadstsEntry = {
  code: "CONSENT_REQUIRED",
  title: "admin consent is missing",
  hint: () =>
    "App registration → API permissions → + Add a permission → Microsoft Graph (Office 365 Exchange Online for SMTP.Send / IMAP.AccessAsUser.All / POP.AccessAsUser.All) → Delegated permissions → add the permission → ✓ Grant admin consent. ROPC cannot show a consent prompt.",
};
const TENANT: AadstsEntry = {
  code: "TENANT_NOT_FOUND",
  title: "tenant not found",
  hint: (c) =>
    `Check tenantId${c.tenantId ? ` (${c.tenantId})` : ""}: use the Directory (tenant) ID from App registration → Overview, and the right cloud (global, usgovhigh, usdod, china) — tenants and tokens never cross clouds.`,
};

/** AADSTS number → error code and hint. Exported so that `m365-mail doctor` explains the same way. */
export const AADSTS_ERRORS: Readonly<Record<number, AadstsEntry>> = {
  50126: {
    code: "AUTH_FAILED",
    title: "invalid username or password",
    hint: (c) =>
      `Check the username and password of ${user(c)} (no leading or trailing spaces: ROPC rejects them). If the domain is federated (AD FS), ROPC only works with a Home Realm Discovery policy that allows cloud password validation (AllowCloudPasswordValidation).`,
  },
  50006: {
    code: "CONFIG_INVALID",
    title: "Entra ID could not verify the signature of the AD FS assertion",
    hint: (c) =>
      `Entra ID refused the assertion AD FS issued for ${user(c)} (${ASSERTION_REFUSED}) because its signature does not match: ${SIGNING_CERTIFICATE(c)}.`,
  },
  50008: {
    code: "CONFIG_INVALID",
    title: "the SAML assertion from AD FS is missing or misconfigured",
    hint: (c) =>
      `Entra ID refused the SAML assertion AD FS issued for ${user(c)} (${ASSERTION_REFUSED}). Check its signature — ${SIGNING_CERTIFICATE(c)} — and its content: the claim rules of the "Microsoft Office 365 Identity Platform" relying party trust on AD FS must issue the UPN and ImmutableID of the user as Entra ID knows them.`,
  },
  50013: {
    code: "CONFIG_INVALID",
    title: "the AD FS assertion is invalid or outside its validity period",
    hint: (c) =>
      `Entra ID refused the assertion AD FS issued for ${user(c)} (${ASSERTION_REFUSED}) as invalid or expired. Usually the clocks differ: synchronise the AD FS servers (and this host) with a reliable time source (NTP), since Entra ID checks the assertion's NotBefore/NotOnOrAfter against its own clock. Otherwise check the token lifetime of the "Microsoft Office 365 Identity Platform" relying party trust on AD FS.`,
  },
  50107: {
    code: "CONFIG_INVALID",
    title: "the requested federation realm object does not exist",
    hint: (c) =>
      `Entra ID has no federation realm for the Issuer of the assertion AD FS issued for ${user(c)} (${ASSERTION_REFUSED}): the Issuer (AD FS's Federation Service identifier, Get-AdfsProperties: Identifier) differs from the IssuerUri of ${domainOf(c)} in Entra ID. Make them equal (Update-MgDomainFederationConfiguration -IssuerUri, or repair the trust in Microsoft Entra Connect; several federated domains on one AD FS each need their own IssuerUri).`,
  },
  50076: MFA,
  50079: { ...MFA, title: "MFA registration is required" },
  50072: { ...MFA, title: "MFA registration is required" },
  50074: { ...MFA, title: "strong authentication is required" },
  65001: CONSENT,
  65004: { ...CONSENT, title: "the user declined consent" },
  7000218: {
    code: "PUBLIC_CLIENT_DISABLED",
    title: "public client flows are disabled for the app",
    hint: () =>
      'App registration → Authentication → Advanced settings → Allow public client flows ("Enable the following mobile and desktop flows"): Yes. The app needs no secret: it signs in as the user.',
  },
  50105: {
    code: "USER_NOT_ASSIGNED",
    title: "the user is not assigned to the app",
    hint: (c) =>
      `Enterprise application → Users and groups → + Add user/group → add ${user(c)} (Enterprise application → Properties → Assignment required? is Yes).`,
  },
  50034: {
    code: "USER_NOT_FOUND",
    title: "the user does not exist in the tenant",
    hint: (c) =>
      `Check the username: ${user(c)} is not in tenant ${c.tenantId ?? "(tenantId)"}. Use the user principal name (UPN), not an alias, and the tenant the mailbox belongs to.`,
  },
  50053: {
    code: "ACCOUNT_LOCKED",
    title: "the account is locked",
    hint: (c) =>
      `${user(c)} is locked after too many failed sign-ins: wait for the lockout to end or unlock it in the Microsoft Entra admin center, and check that the stored password is current.`,
  },
  50057: {
    code: "ACCOUNT_DISABLED",
    title: "the account is disabled",
    hint: (c) => `Microsoft Entra admin center → Users → ${user(c)} → Properties → Account enabled: Yes.`,
  },
  50055: {
    code: "PASSWORD_EXPIRED",
    title: "the password has expired",
    hint: (c) =>
      `Reset the password of ${user(c)} and store the new one; set this mailbox account's password never to expire (the set-up guide's recommendation).`,
  },
  50144: {
    code: "PASSWORD_EXPIRED",
    title: "the Active Directory password has expired",
    hint: (c) => `Reset the password of ${user(c)} on-premises and store the new one.`,
  },
  700016: {
    code: "APP_NOT_FOUND",
    title: "the application was not found in the tenant",
    hint: (c) =>
      `Check clientId${c.clientId ? ` (${c.clientId})` : ""}: use the Application (client) ID from App registration → Overview, of an app registered in tenant ${c.tenantId ?? "(tenantId)"}.`,
  },
  90002: TENANT,
  90072: { ...TENANT, code: "USER_NOT_FOUND", title: "the user is not in the tenant" },
  50128: { ...TENANT, title: "invalid domain name" },
  50059: { ...TENANT, title: "no tenant information in the request" },
  50158: { ...POLICY, title: "an external security challenge was not satisfied" },
  53003: { ...POLICY, title: "blocked by Conditional Access" },
  530035: { ...POLICY, title: "blocked by Security Defaults" },
  53000: { ...POLICY, title: "the device is not compliant" },
  53001: { ...POLICY, title: "the device is not domain joined" },
  700082: { ...REFRESH, title: "the refresh token expired after being idle" },
  70043: { ...REFRESH, title: "the refresh token expired (sign-in frequency)" },
  50173: { ...REFRESH, title: "the grant was revoked (password change or revoked sessions)" },
  70008: { ...REFRESH, title: "the refresh token expired or was revoked" },
  50196: {
    code: "THROTTLED",
    title: "loop detected: too many token requests",
    hint: () =>
      "Reuse one provider per user and keep its cache: tokens are served from memory until shortly before expiry. Several processes can share a fileTokenCache.",
  },
  9001023: {
    code: "CONFIG_INVALID",
    title: "the password grant is not supported on /common or /consumers",
    hint: () => "Set tenantId to the Directory (tenant) ID (or a verified domain), not common or consumers.",
  },
  700022: {
    code: "WRONG_SCOPE",
    title: "the scope list names more than one resource",
    hint: () => "Request Graph and Outlook scopes separately (one resource per token).",
  },
  70011: {
    code: "WRONG_SCOPE",
    title: "the scope is invalid",
    hint: () =>
      "Check the scopes option: Graph permissions such as Mail.Read, Outlook ones as https://outlook.office.com/IMAP.AccessAsUser.All (short Outlook names are prefixed for you).",
  },
  500011: {
    code: "WRONG_SCOPE",
    title: "the resource was not found in the tenant",
    hint: () => "Check the scopes option and the cloud: the resource URI must belong to the tenant's cloud.",
  },
};

/** Fallback by OAuth `error` value when the AADSTS number is unknown (Microsoft advises branching on it). */
export const OAUTH_ERRORS: Readonly<Record<string, AadstsEntry>> = {
  invalid_grant: {
    code: "AUTH_FAILED",
    title: "the grant was refused",
    hint: (c) =>
      c.grant === "saml-bearer"
        ? `Entra ID refused the assertion AD FS issued for ${user(c)} (${ASSERTION_REFUSED}): check the federation trust of ${domainOf(c)} — Get-MgDomainFederationConfiguration (SigningCertificate, IssuerUri) against AD FS (Get-AdfsCertificate -CertificateType Token-Signing, Get-AdfsProperties) — and the clocks of AD FS and this host; the error code names the rest.`
        : `Check the username and password of ${user(c)}.`,
  },
  interaction_required: { ...POLICY, title: "Entra ID asks for an interaction that ROPC cannot do" },
  consent_required: CONSENT,
  invalid_client: {
    code: "PUBLIC_CLIENT_DISABLED",
    title: "the client was refused",
    hint: () =>
      "App registration → Authentication → Advanced settings → Allow public client flows: Yes; check the Application (client) ID.",
  },
  unauthorized_client: {
    code: "APP_NOT_FOUND",
    title: "the client is not authorised in this tenant",
    hint: (c) =>
      `Check clientId${c.clientId ? ` (${c.clientId})` : ""} and tenantId against App registration → Overview.`,
  },
  invalid_scope: {
    code: "WRONG_SCOPE",
    title: "the scope is invalid",
    hint: () => "Check the scopes option: one resource per request, permissions the app registration lists.",
  },
  invalid_request: {
    code: "CONFIG_INVALID",
    title: "the request was refused as invalid",
    hint: () => "Check tenantId (the Directory (tenant) ID), clientId and the cloud.",
  },
  temporarily_unavailable: {
    code: "SERVER_ERROR",
    title: "Entra ID is temporarily unavailable",
    hint: () => "Try again later.",
  },
  slow_down: { code: "THROTTLED", title: "Entra ID asks to slow down", hint: () => "Try again later." },
};

/** The first AADSTS number in an error description or `error_codes` array, if any. */
export function aadstsNumber(errorCodes: unknown, description?: string): number | undefined {
  if (Array.isArray(errorCodes)) {
    for (const value of errorCodes) {
      const n = Number(value);
      if (Number.isInteger(n) && n > 0) return n;
    }
  }
  const match = description ? /AADSTS(\d+)/.exec(description) : null;
  return match ? Number(match[1]) : undefined;
}

/**
 * Looks an Entra ID error up: the AADSTS number first, then the OAuth `error` value.
 * Returns undefined when neither is known.
 */
export function describeAadsts(aadsts: number | undefined, oauthError?: string): AadstsEntry | undefined {
  return (
    (aadsts !== undefined ? AADSTS_ERRORS[aadsts] : undefined) ??
    (oauthError ? OAUTH_ERRORS[oauthError] : undefined)
  );
}
