import { randomUUID } from "node:crypto";

/**
 * Entra ID's error answers, as the v2 token endpoint sends them. Texts follow Microsoft's live answers
 * (see README "Sources"); `{…}` parts are filled from the request. The OAuth `error` value is what
 * clients should branch on (Microsoft's advice), so it matches Microsoft's per code.
 */
export interface AadstsDefinition {
  error: string;
  status: number;
  text: (p: Record<string, string>) => string;
  suberror?: string;
  /** Conditional Access answers carry a claims challenge. */
  claims?: boolean;
}

export const AADSTS = {
  50034: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `The user account {EmailHidden} does not exist in the ${p.tenant} directory. To sign into this application, the account must be added to the directory.`,
  },
  50000: {
    error: "server_error",
    status: 500,
    text: () => "There was an error issuing a token or an issue with our sign-in service.",
  },
  50053: {
    error: "invalid_grant",
    status: 400,
    text: () => "You've tried to sign in too many times with an incorrect user ID or password.",
  },
  50055: {
    error: "invalid_grant",
    status: 400,
    suberror: "user_password_expired",
    text: () => "The password is expired.",
  },
  50057: {
    error: "invalid_grant",
    status: 400,
    text: () => "The user account is disabled.",
  },
  50076: {
    error: "invalid_grant",
    status: 400,
    suberror: "basic_action",
    claims: true,
    text: (p) =>
      `Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '${p.resource}'.`,
  },
  50079: {
    error: "invalid_grant",
    status: 400,
    suberror: "basic_action",
    claims: true,
    text: (p) =>
      `Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '${p.resource}'.`,
  },
  // SAML bearer grants (federated users): https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
  50006: {
    error: "invalid_grant",
    status: 400,
    text: () => "Signature verification failed because of an invalid signature.",
  },
  50008: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `SAML assertion is missing or misconfigured in the token. Contact your federation provider.${p.detail ? ` ${p.detail}` : ""}`,
  },
  50013: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `Assertion is invalid because of various reasons: ${p.detail ?? "the assertion is not valid"}.`,
  },
  50107: {
    error: "invalid_grant",
    status: 400,
    text: (p) => `The requested federation realm object '${p.issuer ?? ""}' does not exist.`,
  },
  50105: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `Your administrator has configured the application ${p.appName} ('${p.clientId}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{EmailHidden}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application.`,
  },
  50126: {
    error: "invalid_grant",
    status: 400,
    text: () => "Error validating credentials due to invalid username or password.",
  },
  50173: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${p.issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${p.validFrom}'.`,
  },
  50196: {
    error: "invalid_grant",
    status: 400,
    text: () =>
      "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.",
  },
  65001: {
    error: "invalid_grant",
    status: 400,
    suberror: "consent_required",
    text: (p) =>
      `The user or administrator has not consented to use the application with ID '${p.clientId}' named '${p.appName}'. Send an interactive authorization request for this user and resource.`,
  },
  70000: {
    error: "invalid_grant",
    status: 400,
    text: () => "The provided value for the input parameter 'refresh_token' or 'assertion' is not valid.",
  },
  70003: {
    error: "unsupported_grant_type",
    status: 400,
    text: (p) => `The app requested an unsupported grant type '${p.grantType}'.`,
  },
  70011: {
    error: "invalid_scope",
    status: 400,
    text: (p) =>
      `The provided value for the input parameter 'scope' is not valid. The scope ${p.scope} is not valid.${p.reason ? ` ${p.reason}` : ""}`,
  },
  // The device code flow (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).
  70016: {
    error: "authorization_pending",
    status: 400,
    text: () =>
      "The provided request has not yet been authorized by the user. The user must input their code.",
  },
  70018: {
    error: "bad_verification_code",
    status: 400,
    text: () => "Invalid verification code due to User typing in wrong user code for device code flow.",
  },
  70019: {
    error: "expired_token",
    status: 400,
    text: () => "Verification code expired. Have the user retry the sign-in.",
  },
  90002: {
    error: "invalid_request",
    status: 400,
    text: (p) =>
      `Tenant '${p.tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  },
  90055: {
    error: "temporarily_unavailable",
    status: 429,
    text: () => "There are too many incoming requests. Please try again later.",
  },
  500011: {
    error: "invalid_resource",
    status: 400,
    text: (p) =>
      `The resource principal named ${p.resource} was not found in the tenant named ${p.tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
  },
  700016: {
    error: "unauthorized_client",
    status: 400,
    text: (p) =>
      `Application with identifier '${p.clientId}' was not found in the directory '${p.tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  },
  700022: {
    error: "invalid_scope",
    status: 400,
    text: (p) =>
      `The provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${p.scope} is not valid.`,
  },
  700025: {
    error: "invalid_client",
    status: 401,
    text: () => "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
  },
  700082: {
    error: "invalid_grant",
    status: 400,
    text: (p) =>
      `The refresh token has expired due to inactivity. The token was issued on ${p.issued} and was inactive for ${p.inactive}.`,
  },
  900144: {
    error: "invalid_request",
    status: 400,
    text: (p) => `The request body must contain the following parameter: '${p.name}'.`,
  },
  7000218: {
    error: "invalid_client",
    status: 401,
    text: () =>
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
  },
  9001023: {
    error: "invalid_request",
    status: 400,
    text: () =>
      "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
  },
  9002313: {
    error: "invalid_grant",
    status: 400,
    text: () => "Invalid request. Request is malformed or invalid.",
  },
} satisfies Record<number, AadstsDefinition>;

export type AadstsCode = keyof typeof AADSTS;

export interface AadstsAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** `2026-01-02 03:04:05Z`, the format of Microsoft's error timestamps. */
export function aadTimestamp(date = new Date()): string {
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** Builds the JSON error body exactly as Entra ID shapes it. */
export function aadstsError(
  code: AadstsCode,
  params: Record<string, string> = {},
  correlationId: string = randomUUID(),
): AadstsAnswer {
  const def: AadstsDefinition = AADSTS[code];
  const traceId = randomUUID();
  const timestamp = aadTimestamp();
  const body: Record<string, unknown> = {
    error: def.error,
    error_description: `AADSTS${code}: ${def.text(params)}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
  if (def.suberror) body.suberror = def.suberror;
  if (def.claims) {
    // The shape of a Conditional Access claims challenge; the policy id is the emulator's own.
    body.claims = JSON.stringify({
      access_token: { capolids: { essential: true, values: ["0b2a7f3e-6c1d-4e5f-9a8b-7c6d5e4f3a2b"] } },
    });
  }
  return { status: def.status, body };
}
