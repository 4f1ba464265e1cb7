import { type ErrorCode, type Logger, M365MailError, XmlParseError } from "@m365-mail/core";
import { describeUrl, type HttpClient, SOURCE } from "../http-client.js";
import {
  chooseEndpoint,
  isHttpsUrl,
  usernamePasswordEndpoints,
  versionFromPath,
  type WsTrustEndpoint,
} from "./mex.js";
import { discoverUserRealm, type UserRealm } from "./user-realm.js";
import { buildRst, readWsTrustResponse, type SamlAssertion } from "./ws-trust.js";

/**
 * How a password becomes tokens. `auto`: ask Entra ID's user-realm discovery; a federated (AD FS) user
 * goes through WS-Trust, everyone else (and a federated user whose AD FS cannot be reached) through the
 * plain password grant. `ws-trust`: always through AD FS. `direct`: always the plain password grant
 * (for tenants whose Home Realm Discovery policy allows cloud password validation).
 */
export type FederationMode = "auto" | "ws-trust" | "direct";

/** How the last sign-in went, for diagnostics (`m365-mail doctor`). Never holds a secret. */
export interface SignInRoute {
  mode: FederationMode;
  /** The realm Entra ID reported; absent with `direct` (no discovery is made). */
  realm?: UserRealm["accountType"];
  domain?: string;
  /** `password`: grant_type=password at Entra ID; `saml-bearer`: an AD FS assertion redeemed at Entra ID. */
  method: "password" | "saml-bearer";
  /** The AD FS WS-Trust endpoint used (or that failed, before a fallback). */
  adfsEndpoint?: string;
  wsTrustVersion?: WsTrustEndpoint["version"];
  /** `urn:oasis:names:tc:SAML:1.0:assertion`, …; with `saml-bearer`. */
  tokenType?: string;
  grantType?: string;
  /** Why `auto` used the password grant for a federated user. */
  fallbackReason?: string;
}

export type SignInPlan =
  | { kind: "direct"; route: SignInRoute; fallbackFrom?: M365MailError }
  | { kind: "assertion"; route: SignInRoute; assertion: SamlAssertion };

export interface FederationOptions {
  mode: FederationMode;
  authorityHost: string;
  username: string;
  /** For Entra ID's user-realm discovery. */
  http: HttpClient;
  /** For AD FS (MEX, WS-Trust): its own proxy setting. @default http */
  adfsHttp?: HttpClient;
  logger: Logger;
  /** How long realm and MEX answers are reused. @default 3600000 */
  cacheTtlMs?: number;
}

export interface FederatedSignIn {
  /** Decides the route and, for a federated user, gets the SAML assertion from AD FS. */
  prepare(password: string): Promise<SignInPlan>;
  /** The route of the last `prepare`; after a failure, as far as it got (realm, AD FS endpoint). */
  lastRoute(): SignInRoute | undefined;
}

// Failures of reaching AD FS (or Entra's realm endpoint), as opposed to AD FS refusing the user.
const UNREACHABLE: ReadonlySet<ErrorCode> = new Set([
  "CONNECTION_FAILED",
  "TIMEOUT",
  "SERVER_ERROR",
  "THROTTLED",
]);

const isUnreachable = (error: unknown): error is M365MailError =>
  error instanceof M365MailError && UNREACHABLE.has(error.code);

const originOf = (url: string) => {
  try {
    return new URL(url).origin;
  } catch {
    return "(invalid URL)";
  }
};

/** Entra ID named an AD FS address that is no https URL: the domain's federation settings are wrong. */
function malformedAddress(domain: string, what: string, value: string, setting: string): M365MailError {
  return new M365MailError(
    "CONFIG_INVALID",
    `Entra ID's user-realm discovery names ${JSON.stringify(value.slice(0, 120))} as the AD FS ${what} of ${domain}, which is not a valid https:// URL`,
    {
      source: SOURCE,
      hint: `Ask the tenant admin to correct the federation settings of ${domain} in Entra ID (Get-MgDomainFederationConfiguration: ${setting}, set with Update-MgDomainFederationConfiguration or Microsoft Entra Connect), or set federation: "direct" if the tenant allows cloud password validation.`,
    },
  );
}

function adfsUnreachable(error: M365MailError, step: string, url: string): M365MailError {
  const inner = error.message.replace(/^\[m365-mail\] \[[^\]]+\] /, "").replace(/ — .*$/s, "");
  return new M365MailError(error.code, `AD FS could not be reached for ${step} (${inner})`, {
    source: SOURCE,
    cause: error,
    status: error.status,
    retryable: error.retryable,
    hint: `Check that the federation server ${originOf(url)} is reachable from this host (DNS, firewall, the adfsProxy option: AD FS is reached directly unless it is set; its TLS certificate: the ca option); AD FS often publishes usernamemixed only on the intranet or through the Web Application Proxy. With federation: "auto" the password grant at Entra ID is tried instead, which works only if the tenant allows cloud password validation.`,
  });
}

/** User-realm discovery, MEX and WS-Trust, with the realm and MEX answers cached. */
export function federatedSignIn(options: FederationOptions): FederatedSignIn {
  const { http, logger: log, mode, username } = options;
  const adfsHttp = options.adfsHttp ?? http;
  const ttl = options.cacheTtlMs ?? 3_600_000;
  const domain = username.split("@")[1]!.toLowerCase();
  const realms = new Map<string, { realm: UserRealm; at: number }>();
  const mexes = new Map<string, { endpoints: WsTrustEndpoint[]; at: number }>();
  let last: SignInRoute | undefined;

  async function realm(): Promise<UserRealm> {
    const hit = realms.get(domain);
    if (hit && Date.now() - hit.at < ttl) return hit.realm;
    const found = await discoverUserRealm(http, options.authorityHost, username, log);
    realms.set(domain, { realm: found, at: Date.now() });
    return found;
  }

  async function endpointsFrom(mexUrl: string): Promise<WsTrustEndpoint[]> {
    const hit = mexes.get(mexUrl);
    if (hit && Date.now() - hit.at < ttl) return hit.endpoints;
    let res: Awaited<ReturnType<HttpClient["send"]>>;
    try {
      res = await adfsHttp.send({
        method: "GET",
        url: mexUrl,
        headers: { accept: "application/soap+xml, text/xml" },
      });
    } catch (error) {
      throw error instanceof M365MailError ? adfsUnreachable(error, "its metadata (MEX)", mexUrl) : error;
    }
    if (res.status < 200 || res.status >= 300) {
      throw adfsUnreachable(
        new M365MailError("SERVER_ERROR", `GET ${describeUrl(mexUrl)} answered ${res.status}`, {
          source: SOURCE,
          status: res.status,
        }),
        "its metadata (MEX)",
        mexUrl,
      );
    }
    let endpoints: WsTrustEndpoint[];
    try {
      endpoints = usernamePasswordEndpoints(res.text);
    } catch (error) {
      throw new M365MailError(
        "INVALID_RESPONSE",
        `the AD FS metadata at ${describeUrl(mexUrl)} is not valid XML`,
        {
          source: SOURCE,
          cause: error instanceof XmlParseError ? error : undefined,
          hint: "Something other than AD FS answers at the federation metadata URL (a proxy or login page?): check the path from this host to AD FS.",
        },
      );
    }
    mexes.set(mexUrl, { endpoints, at: Date.now() });
    return endpoints;
  }

  async function endpointFor(found: UserRealm): Promise<WsTrustEndpoint> {
    if (found.federationMetadataUrl) {
      if (!isHttpsUrl(found.federationMetadataUrl)) {
        throw malformedAddress(
          domain,
          "metadata (MEX) address",
          found.federationMetadataUrl,
          "MetadataExchangeUri",
        );
      }
      const endpoints = await endpointsFrom(found.federationMetadataUrl);
      const chosen = chooseEndpoint(endpoints);
      if (chosen) return chosen;
      throw new M365MailError(
        "NOT_SUPPORTED",
        `the AD FS metadata at ${describeUrl(found.federationMetadataUrl)} offers no WS-Trust username/password endpoint over https`,
        {
          source: SOURCE,
          hint: 'On AD FS enable /adfs/services/trust/13/usernamemixed (AD FS Management → Service → Endpoints → Enable, and "Proxy Enabled" when signing in from outside), or set federation: "direct" if the tenant allows cloud password validation (needs Password Hash Sync).',
        },
      );
    }
    // MSAL Python's fallback: no MEX document, but Entra ID names the active endpoint.
    const active = found.federationActiveAuthUrl;
    if (active?.toLowerCase().startsWith("https://") && !isHttpsUrl(active)) {
      throw malformedAddress(domain, "active sign-in address", active, "ActiveSignInUri");
    }
    const version = active ? versionFromPath(active) : undefined;
    if (active?.toLowerCase().startsWith("https://") && version) return { address: active, version };
    throw new M365MailError(
      "NOT_SUPPORTED",
      `the federated domain ${domain} names no AD FS metadata (MEX) document`,
      {
        source: SOURCE,
        hint: 'Ask the tenant admin to check the domain\'s federation settings (Get-MgDomainFederationConfiguration: MetadataExchangeUri), or set federation: "direct" if the tenant allows cloud password validation.',
      },
    );
  }

  async function wsTrust(
    endpoint: WsTrustEndpoint,
    found: UserRealm,
    password: string,
  ): Promise<SamlAssertion> {
    const rst = buildRst({ endpoint, username, password, appliesTo: found.cloudAudienceUrn });
    log.debug(`WS-Trust ${endpoint.version} request to AD FS`, { url: describeUrl(endpoint.address) });
    let res: Awaited<ReturnType<HttpClient["send"]>>;
    try {
      res = await adfsHttp.send({
        method: "POST",
        url: endpoint.address,
        headers: rst.headers,
        body: rst.body,
      });
    } catch (error) {
      throw error instanceof M365MailError ? adfsUnreachable(error, "WS-Trust", endpoint.address) : error;
    }
    try {
      return readWsTrustResponse(res, endpoint, username);
    } catch (error) {
      throw isUnreachable(error) ? adfsUnreachable(error, "WS-Trust", endpoint.address) : error;
    }
  }

  async function prepare(password: string): Promise<SignInPlan> {
    if (mode === "direct") return { kind: "direct", route: { mode, method: "password" } };
    // A failed realm lookup is no reason to send a federated user's password to Entra ID: it is Entra
    // ID itself failing (the caller retries). Only a 404 (no discovery on this host) means "direct".
    const found = await realm();
    const base = {
      mode,
      realm: found.accountType,
      ...(found.domainName ? { domain: found.domainName } : {}),
    };
    if (found.accountType !== "Federated") {
      if (mode === "ws-trust") {
        throw new M365MailError(
          "CONFIG_INVALID",
          `federation is "ws-trust" but Entra ID reports the realm of ${domain} as ${found.accountType}, not Federated`,
          {
            source: SOURCE,
            hint: 'Set federation: "auto" (or "direct"): the domain is not federated to AD FS.',
          },
        );
      }
      log.debug(`realm of ${domain} is ${found.accountType}: password grant at Entra ID, no AD FS request`);
      return { kind: "direct", route: { ...base, method: "password" } };
    }
    let endpoint: WsTrustEndpoint | undefined;
    // Known before AD FS answers, so that a refusal can still be shown with the realm and endpoint.
    last = { ...base, method: "saml-bearer" };
    try {
      endpoint = await endpointFor(found);
      last = { ...last, adfsEndpoint: endpoint.address, wsTrustVersion: endpoint.version };
      const assertion = await wsTrust(endpoint, found, password);
      const route: SignInRoute = {
        ...base,
        method: "saml-bearer",
        adfsEndpoint: endpoint.address,
        wsTrustVersion: endpoint.version,
        tokenType: assertion.tokenType,
        grantType: assertion.grantType,
      };
      log.debug(`AD FS issued a ${assertion.tokenType} assertion; redeeming it at Entra ID`, {
        endpoint: describeUrl(endpoint.address),
      });
      return { kind: "assertion", route, assertion };
    } catch (error) {
      if (mode === "auto" && isUnreachable(error)) {
        // Only when AD FS cannot be reached: a refusal by AD FS (wrong password, locked) is final, and
        // trying the password at Entra ID as well would count twice towards a lockout.
        log.debug(`AD FS unreachable (${error.code}); trying the password grant at Entra ID instead`, {
          error: error.message,
        });
        return {
          kind: "direct",
          route: {
            ...base,
            method: "password",
            ...(endpoint ? { adfsEndpoint: endpoint.address, wsTrustVersion: endpoint.version } : {}),
            fallbackReason: `AD FS unreachable (${error.code})`,
          },
          fallbackFrom: error,
        };
      }
      throw error;
    }
  }

  return {
    async prepare(password) {
      last = undefined;
      const plan = await prepare(password);
      last = plan.route;
      return plan;
    },
    /** After a failure: as far as the sign-in got (realm, AD FS endpoint). */
    lastRoute: () => last,
  };
}

/**
 * The error for a direct grant that Entra ID refused after AD FS could not be reached: the root cause
 * is AD FS, and the refusal (AADSTS50126) says the tenant does not allow cloud password validation.
 */
export function fallbackRefused(refusal: M365MailError, adfsError: M365MailError): M365MailError {
  if (refusal.code !== "AUTH_FAILED") return refusal;
  return new M365MailError(
    adfsError.code,
    `${adfsError.message.replace(/^\[m365-mail\] \[[^\]]+\] /, "").replace(/ — .*$/s, "")}; the password grant at Entra ID was tried instead and refused (${refusal.serverCode ?? refusal.code}): the tenant does not validate this federated user's password in the cloud`,
    {
      source: SOURCE,
      cause: adfsError,
      retryable: adfsError.retryable,
      hint: `Make AD FS reachable from this host (DNS, firewall, the adfsProxy and ca options), or have the tenant admin allow cloud password validation for this app (Home Realm Discovery policy with AllowCloudPasswordValidation: true; needs Password Hash Sync) and set federation: "direct".`,
    },
  );
}
