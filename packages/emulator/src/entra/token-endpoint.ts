import { OUTLOOK_PERMISSIONS, registerSecret } from "@m365-mail/core";
import type { AdfsService } from "../adfs/adfs-service.js";
import { federationOf } from "../adfs/federation.js";
import type { RequestCounters } from "../context.js";
import type { DirectoryApp, DirectoryTenant, DirectoryUser } from "../directory.js";
import type { DirectoryStore } from "../directory-store.js";
import { type AadstsAnswer, type AadstsCode, aadstsError } from "./aadsts.js";
import type { LoopDetector } from "./loop-detector.js";
import {
  audienceFor,
  GRAPH_APP_ID,
  includesPermission,
  parseScopeParameter,
  type RequestedResource,
} from "./scopes.js";
import type { SmartLockout } from "./smart-lockout.js";
import type { TokenService } from "./tokens.js";

export interface TokenEndpointDeps {
  store: DirectoryStore;
  tokens: TokenService;
  counters: RequestCounters;
  loops: LoopDetector;
  /** Entra's smart lockout; absent: never locks. */
  lockout?: SmartLockout;
  /** The emulated AD FS whose assertions the SAML bearer grants redeem. */
  adfs?: AdfsService;
}

export interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A refusal on its way to becoming Entra's error answer (also thrown by the device-code grant). */
export class Refusal {
  constructor(
    readonly code: AadstsCode,
    readonly params: Record<string, string> = {},
  ) {}
}

export const refuse = (code: AadstsCode, params: Record<string, string> = {}): never => {
  throw new Refusal(code, params);
};

/**
 * `POST /{tenant}/oauth2/v2.0/token` for `grant_type=password` (ROPC) and `grant_type=refresh_token`.
 * Every refusal is derived from the directory, in the order Entra checks: tenant, client, app
 * settings, scope, user, credentials, account state, MFA, assignment, consent.
 */
export function handleTokenRequest(
  deps: TokenEndpointDeps,
  tenantSegment: string,
  form: URLSearchParams,
  correlationId: string,
): TokenAnswer {
  const grantType = form.get("grant_type") ?? "";
  deps.counters.increment("entra.token");
  if (grantType) deps.counters.increment(`entra.token.${grantType}`);
  // (Not the SAML assertion: several KB each, and `assertion=` is redacted by pattern anyway.)
  // Passwords too go to the redactor's bounded set: every wrong one a test (or a client) tries comes here.
  registerSecret(form.get("password"), { rotating: true });
  // Refresh tokens rotate on every grant: held in the redactor's bounded set.
  registerSecret(form.get("refresh_token"), { rotating: true });
  try {
    return issue(deps, tenantSegment, form, grantType);
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    deps.counters.increment(`entra.token.error.${error.code}`);
    const answer: AadstsAnswer = aadstsError(error.code, error.params, correlationId);
    return answer;
  }
}

function issue(
  deps: TokenEndpointDeps,
  tenantSegment: string,
  form: URLSearchParams,
  grantType: string,
): TokenAnswer {
  const segment = tenantSegment.toLowerCase();
  if (segment === "common" || segment === "consumers") refuse(9001023);
  const fixedTenant = segment === "organizations" ? undefined : deps.store.findTenant(segment);
  if (segment !== "organizations" && !fixedTenant) refuse(90002, { tenant: tenantSegment });
  if (!grantType) refuse(900144, { name: "grant_type" });
  const saml = SAML_GRANTS[grantType];
  if (grantType !== "password" && grantType !== "refresh_token" && !saml) refuse(70003, { grantType });
  const clientId = form.get("client_id") ?? "";
  if (!clientId) refuse(900144, { name: "client_id" });
  if (saml) return samlBearerGrant(deps, fixedTenant, clientId, form, saml);
  return grantType === "password"
    ? passwordGrant(deps, fixedTenant, clientId, form)
    : refreshGrant(deps, fixedTenant, clientId, form);
}

function passwordGrant(
  deps: TokenEndpointDeps,
  fixedTenant: DirectoryTenant | undefined,
  clientId: string,
  form: URLSearchParams,
): TokenAnswer {
  const username = form.get("username") ?? "";
  const password = form.get("password");
  if (!username) refuse(900144, { name: "username" });
  if (password === null || password === "") refuse(900144, { name: "password" });
  deps.counters.increment(`entra.token.password:${username.toLowerCase()}`);

  // /organizations: the tenant comes from the user's domain (home realm discovery).
  const domain = username.split("@")[1] ?? "";
  const tenant = fixedTenant ?? deps.store.findUser(username)?.tenant ?? deps.store.findTenant(domain);
  if (!tenant) return refuse(50034, { tenant: domain || "organizations" });
  const app = checkApp(deps, tenant, clientId, form);
  const scope = parseScope(form.get("scope") ?? undefined, tenant);
  const user = tenant.users.find((u) => u.upn.toLowerCase() === username.toLowerCase());
  if (!user) return refuse(50034, { tenant: tenant.domains[0] ?? tenant.id });
  deps.loops.hit(`${user.upn}|${clientId}|password|${form.get("scope")}`) || refuse(50196);

  // Federated users have no cloud password to check, unless the app's Home Realm Discovery policy
  // allows cloud password validation (Password Hash Sync).
  if (federationOf(deps.store, user.upn) && !app.allowCloudPasswordValidation) refuse(50126);
  if (user.locked || deps.lockout?.isLocked(user.upn)) refuse(50053);
  // ROPC does not support passwords with leading or trailing spaces (Microsoft's ROPC page).
  if (password !== user.password || password.trim() !== password) {
    deps.counters.increment(`entra.lockout.failures:${user.upn.toLowerCase()}`);
    if (deps.lockout?.failed(user.upn, password ?? "")) {
      deps.counters.increment(`entra.lockout.locked:${user.upn.toLowerCase()}`);
    }
    refuse(50126);
  }
  deps.lockout?.succeeded(user.upn);
  checkAccount(tenant, user, app, scope.resource);
  return success(deps, tenant, user, app, scope.resource, scope.oidc, form);
}

function refreshGrant(
  deps: TokenEndpointDeps,
  fixedTenant: DirectoryTenant | undefined,
  clientId: string,
  form: URLSearchParams,
): TokenAnswer {
  const refreshToken = form.get("refresh_token") ?? "";
  if (!refreshToken) refuse(900144, { name: "refresh_token" });
  const record = deps.tokens.findRefreshToken(refreshToken);
  if (!record) return refuse(9002313);
  deps.counters.increment(`entra.token.refresh_token:${record.upn.toLowerCase()}`);
  if (record.clientId.toLowerCase() !== clientId.toLowerCase()) refuse(70000);
  if (fixedTenant && fixedTenant.id !== record.tenantId) refuse(70000);
  if (record.revoked) {
    refuse(50173, { issued: aadDate(record.issuedAt), validFrom: aadDate(Date.now()) });
  }
  if (deps.tokens.isIdleExpired(record)) {
    const idleDays = Math.floor((Date.now() - record.lastUsedAt) / 86_400_000);
    refuse(700082, { issued: aadDate(record.issuedAt), inactive: `${idleDays}.00:00:00` });
  }
  const tenant = deps.store.findTenant(record.tenantId);
  const found = deps.store.findUser(record.upn);
  if (!tenant || !found || found.tenant.id !== tenant.id) return refuse(50034, { tenant: record.tenantId });
  const user = found.user;
  const app = checkApp(deps, tenant, clientId, form);
  const scope = parseScope(form.get("scope") ?? undefined, tenant);
  deps.loops.hit(`${user.upn}|${clientId}|refresh_token|${form.get("scope")}`) || refuse(50196);
  // A refresh re-checks the account: a user disabled or put under MFA since sign-in is refused now.
  if (user.locked) refuse(50053);
  // A refresh token from an MFA sign-in (device code) carries the MFA claim: an MFA policy is satisfied.
  checkAccount(tenant, user, app, scope.resource, record.mfa === true);
  record.lastUsedAt = Date.now();
  return success(deps, tenant, user, app, scope.resource, scope.oidc, form, record.mfa === true);
}

const SAML_GRANTS: Record<string, "1.1" | "2.0" | undefined> = {
  "urn:ietf:params:oauth:grant-type:saml1_1-bearer": "1.1",
  "urn:ietf:params:oauth:grant-type:saml2-bearer": "2.0",
};

/**
 * The SAML bearer grants (RFC 7522; SAML 1.1 as Microsoft extends it): an assertion from the emulated
 * AD FS, `assertion` in base64 (MSAL.NET) or base64url without padding (MSAL Python).
 */
function samlBearerGrant(
  deps: TokenEndpointDeps,
  fixedTenant: DirectoryTenant | undefined,
  clientId: string,
  form: URLSearchParams,
  version: "1.1" | "2.0",
): TokenAnswer {
  const encoded = form.get("assertion") ?? "";
  if (!encoded) refuse(900144, { name: "assertion" });
  deps.counters.increment(`entra.token.saml${version === "1.1" ? "11" : "20"}`);
  if (!deps.adfs) return refuse(50008, { detail: "This emulator runs no AD FS." });
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded))
    return refuse(50008, { detail: "The assertion is not base64." });
  // Node's base64 decoder reads both alphabets, with or without padding.
  const xml = Buffer.from(encoded, "base64").toString("utf8");
  const verdict = deps.adfs.verifyAssertion(xml, version);
  if (!verdict.ok) return refuse(verdict.code, verdict.params);
  const found = deps.store.findUser(verdict.upn);
  if (!found) return refuse(50034, { tenant: fixedTenant?.domains[0] ?? "organizations" });
  const { tenant, user } = found;
  if (fixedTenant && fixedTenant.id !== tenant.id)
    refuse(50034, { tenant: fixedTenant.domains[0] ?? fixedTenant.id });
  deps.counters.increment(`entra.token.saml:${user.upn.toLowerCase()}`);
  const app = checkApp(deps, tenant, clientId, form);
  const scope = parseScope(form.get("scope") ?? undefined, tenant);
  deps.loops.hit(`${user.upn}|${clientId}|saml|${form.get("scope")}`) || refuse(50196);
  // AD FS already checked the password and the on-premises account state; the cloud account's remains.
  checkAccount(tenant, user, app, scope.resource);
  return success(deps, tenant, user, app, scope.resource, scope.oidc, form);
}

export function checkApp(
  deps: TokenEndpointDeps,
  tenant: DirectoryTenant,
  clientId: string,
  form: URLSearchParams,
): DirectoryApp {
  const app = deps.store.findApp(tenant, clientId);
  if (!app) return refuse(700016, { clientId, tenantName: tenant.domains[0] ?? tenant.id });
  // App registration → Authentication → Allow public client flows = No: Entra wants a secret.
  if (!app.publicClient) refuse(7000218);
  if (form.has("client_secret") || form.has("client_assertion")) refuse(700025);
  return app;
}

export function parseScope(
  scope: string | undefined,
  tenant: DirectoryTenant,
): { resource: RequestedResource; oidc: Set<string> } {
  const parsed = parseScopeParameter(scope);
  if (!parsed.ok)
    return refuse(parsed.code, { ...parsed.params, tenantName: tenant.domains[0] ?? tenant.id });
  return parsed;
}

export function checkAccount(
  tenant: DirectoryTenant,
  user: DirectoryUser,
  app: DirectoryApp,
  resource: RequestedResource,
  mfaDone = false,
): void {
  // Shared mailboxes are created with sign-in blocked.
  if (user.disabled || user.shared) refuse(50057);
  if (user.passwordExpired) refuse(50055);
  // Security Defaults require MFA for every user; ROPC cannot do MFA.
  if ((user.mfa || tenant.securityDefaults) && !mfaDone) {
    refuse(50076, {
      resource: resource.resource === "graph" ? GRAPH_APP_ID : "00000002-0000-0ff1-ce00-000000000000",
    });
  }
  if (
    app.assignmentRequired &&
    !(app.assignedUsers ?? []).some((u) => u.toLowerCase() === user.upn.toLowerCase())
  ) {
    refuse(50105, { appName: app.displayName, clientId: app.clientId });
  }
  const granted = app.grantedPermissions[resource.resource] ?? [];
  const missing = resource.permissions.filter((p) => !isGranted(app, resource, p));
  if (missing.length > 0 || (resource.isDefault && granted.length === 0)) {
    refuse(65001, { clientId: app.clientId, appName: app.displayName });
  }
}

function isGranted(app: DirectoryApp, resource: RequestedResource, permission: string): boolean {
  if (includesPermission(app.grantedPermissions[resource.resource], permission)) return true;
  // The Outlook permissions are also listed under Microsoft Graph in the portal; asked for by their short
  // name they yield a Graph token (which IMAP/POP/SMTP then refuse).
  return (
    resource.resource === "graph" &&
    resource.identifier === undefined &&
    includesPermission(OUTLOOK_PERMISSIONS, permission) &&
    includesPermission(app.grantedPermissions.outlook, permission)
  );
}

export function success(
  deps: TokenEndpointDeps,
  tenant: DirectoryTenant,
  user: DirectoryUser,
  app: DirectoryApp,
  resource: RequestedResource,
  oidc: Set<string>,
  form: URLSearchParams,
  mfa = false,
): TokenAnswer {
  // Entra puts every consented permission of the resource in the token, not only the requested ones.
  const effective = unique([
    ...(app.grantedPermissions[resource.resource] ?? []),
    ...resource.permissions.filter((p) => isGranted(app, resource, p)),
  ]);
  // Graph tokens also carry the sign-in scopes; other resources' tokens do not.
  const signIn =
    resource.resource === "graph" ? ["openid", "profile", "email"].filter((s) => oidc.has(s)) : [];
  const aud = audienceFor(resource);
  const access = deps.tokens.issueAccessToken({
    tenant,
    user,
    app,
    resource: resource.resource,
    aud,
    scp: [...effective, ...signIn],
    mfa,
  });
  // Access tokens are JWTs, which redact() always removes by pattern; registering each one would only
  // slow every later redact() in a long run.
  const echoed = effective.map((p) => (resource.identifier ? `${resource.identifier}/${p}` : p));
  const body: Record<string, unknown> = {
    token_type: "Bearer",
    scope: [...echoed, ...signIn].join(" "),
    expires_in: access.expiresIn,
    ext_expires_in: access.expiresIn,
    access_token: access.token,
  };
  if (oidc.has("offline_access")) {
    body.refresh_token = deps.tokens.createRefreshToken(user.upn, app.clientId, tenant.id, mfa);
    registerSecret(body.refresh_token as string, { rotating: true });
  }
  if (oidc.has("openid")) body.id_token = deps.tokens.issueIdToken(tenant, user, app, oidc.has("email"));
  if (form.get("client_info") === "1") body.client_info = deps.tokens.clientInfo(tenant, user);
  return { status: 200, body };
}

function unique(items: string[]): string[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const key = item.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function aadDate(ms: number): string {
  // Microsoft writes these as "2026-01-02T03:04:05.0000000Z".
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, ".0000000Z");
}
