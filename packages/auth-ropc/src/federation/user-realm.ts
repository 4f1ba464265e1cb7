import { type Logger, M365MailError } from "@m365-mail/core";
import { describeUrl, type HttpClient, SOURCE } from "../http-client.js";
import { parseRetryAfter } from "../token-response.js";

/** What Entra ID's user-realm discovery says about a user's domain. */
export interface UserRealm {
  /** `Federated`: the password is checked by the domain's own STS (AD FS); `Managed`: by Entra ID. */
  accountType: "Managed" | "Federated" | "Unknown";
  domainName?: string;
  /** WS-MetadataExchange document of the federation server (AD FS), for `Federated`. */
  federationMetadataUrl?: string;
  /** The STS endpoint Entra ID knows; used when the realm names no MEX document (as MSAL Python does). */
  federationActiveAuthUrl?: string;
  /** AppliesTo of the WS-Trust request. @default "urn:federation:MicrosoftOnline" */
  cloudAudienceUrn: string;
}

export const DEFAULT_AUDIENCE_URN = "urn:federation:MicrosoftOnline";

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * `GET https://{authority-host}/common/userrealm/{upn}?api-version=1.0`. Always on `/common/`, whatever
 * the tenant (MSAL.NET, MSAL Python). A 404 means the host has no realm discovery: treated as Unknown,
 * so the caller signs in directly (MSAL Python's fallback).
 */
export async function discoverUserRealm(
  http: HttpClient,
  authorityHost: string,
  username: string,
  log: Logger,
): Promise<UserRealm> {
  const url = `${authorityHost}/common/userrealm/${encodeURIComponent(username)}?api-version=1.0`;
  const where = `GET ${describeUrl(url)}`;
  const res = await http.send({ method: "GET", url, headers: { accept: "application/json" } });
  if (res.status === 404) {
    log.debug(`${where} answered 404: no user-realm discovery on this host, treating the realm as Unknown`);
    return { accountType: "Unknown", cloudAudienceUrn: DEFAULT_AUDIENCE_URN };
  }
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(res.text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
      body = parsed as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  if (res.status === 429) {
    const retryAfterSeconds = parseRetryAfter(res.headers["retry-after"]);
    throw new M365MailError("THROTTLED", `${where} (user-realm discovery) answered 429 Too Many Requests`, {
      source: SOURCE,
      status: 429,
      retryAfterSeconds,
      hint: "Entra ID is throttling requests: reuse one provider per user so that tokens come from its cache.",
    });
  }
  if (res.status < 200 || res.status >= 300 || !body) {
    throw new M365MailError(
      res.status >= 500 ? "SERVER_ERROR" : "INVALID_RESPONSE",
      `${where} (user-realm discovery) answered ${res.status}${body ? "" : " without JSON"}`,
      {
        source: SOURCE,
        status: res.status,
        hint: 'Check authorityHost and the proxy option; or set federation: "direct" to skip user-realm discovery.',
      },
    );
  }
  // MSAL Python compares "Federated" exactly, MSAL.NET ignores case: ignoring case accepts both.
  const type = String(body.account_type ?? "").toLowerCase();
  const accountType = type === "federated" ? "Federated" : type === "managed" ? "Managed" : "Unknown";
  return {
    accountType,
    ...(str(body.domain_name) ? { domainName: str(body.domain_name) } : {}),
    ...(str(body.federation_metadata_url)
      ? { federationMetadataUrl: str(body.federation_metadata_url) }
      : {}),
    ...(str(body.federation_active_auth_url)
      ? { federationActiveAuthUrl: str(body.federation_active_auth_url) }
      : {}),
    cloudAudienceUrn: str(body.cloud_audience_urn) ?? DEFAULT_AUDIENCE_URN,
  };
}
