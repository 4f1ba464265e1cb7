import { randomUUID } from "node:crypto";
import {
  type ErrorCode,
  escapeXml,
  M365MailError,
  parseXml,
  registerSecret,
  type XmlElement,
  xmlPath,
} from "@m365-mail/core";
import { describeUrl, type HttpResponse, SOURCE } from "../http-client.js";
import { NS, SOAP_ACTION, type WsTrustEndpoint, type WsTrustVersion } from "./mex.js";
import { DEFAULT_AUDIENCE_URN } from "./user-realm.js";

const WST: Record<WsTrustVersion, { ns: string; keyType: string; requestType: string }> = {
  "1.3": {
    ns: NS.wst13,
    keyType: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer",
    requestType: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue",
  },
  "2005": {
    ns: NS.wst2005,
    keyType: "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey",
    requestType: "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue",
  },
};

export interface RstInput {
  endpoint: WsTrustEndpoint;
  username: string;
  password: string;
  /** AppliesTo: the realm's `cloud_audience_urn`. */
  appliesTo: string;
  now?: Date;
}

const wsuTime = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

/**
 * The SOAP 1.2 RequestSecurityToken with a UsernameToken, as MSAL Python and MSAL.NET send it
 * (timestamp valid 10 minutes). Every value is XML-escaped, the password included.
 */
export function buildRst(input: RstInput): { body: string; headers: Record<string, string> } {
  const { endpoint } = input;
  const wst = WST[endpoint.version];
  const action = SOAP_ACTION[endpoint.version];
  const now = input.now ?? new Date();
  const escapedPassword = escapeXml(input.password);
  // The password itself is held by its provider; its escaped form (only when it differs) rotates out.
  if (escapedPassword !== input.password) registerSecret(escapedPassword, { rotating: true });
  const body = `<s:Envelope xmlns:s='${NS.s}' xmlns:wsa='${NS.wsa10}' xmlns:wsu='${NS.wsu}'><s:Header><wsa:Action s:mustUnderstand='1'>${action}</wsa:Action><wsa:MessageID>urn:uuid:${randomUUID()}</wsa:MessageID><wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo><wsa:To s:mustUnderstand='1'>${escapeXml(endpoint.address)}</wsa:To><wsse:Security s:mustUnderstand='1' xmlns:wsse='http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd'><wsu:Timestamp wsu:Id='_0'><wsu:Created>${wsuTime(now)}</wsu:Created><wsu:Expires>${wsuTime(new Date(now.getTime() + 600_000))}</wsu:Expires></wsu:Timestamp><wsse:UsernameToken wsu:Id='UnPwSecTok-${randomUUID()}'><wsse:Username>${escapeXml(input.username)}</wsse:Username><wsse:Password>${escapedPassword}</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body><wst:RequestSecurityToken xmlns:wst='${wst.ns}'><wsp:AppliesTo xmlns:wsp='${NS.wsp}'><wsa:EndpointReference><wsa:Address>${escapeXml(input.appliesTo)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><wst:KeyType>${wst.keyType}</wst:KeyType><wst:RequestType>${wst.requestType}</wst:RequestType></wst:RequestSecurityToken></s:Body></s:Envelope>`;
  return {
    body,
    headers: { "content-type": "application/soap+xml; charset=utf-8", soapaction: action },
  };
}

export type SamlGrantType =
  | "urn:ietf:params:oauth:grant-type:saml1_1-bearer"
  | "urn:ietf:params:oauth:grant-type:saml2-bearer";

export interface SamlAssertion {
  /** The assertion exactly as AD FS wrote it: re-serialising would break its signature. */
  xml: string;
  tokenType: string;
  grantType: SamlGrantType;
}

/** Token type → grant type (MSAL Python `_acquire_token_by_username_password_federated`, MSAL.NET). */
export function grantTypeFor(tokenType: string): SamlGrantType | undefined {
  const t = tokenType.trim();
  if (t === "urn:oasis:names:tc:SAML:1.0:assertion" || t.endsWith("#SAMLV1.1")) {
    return "urn:ietf:params:oauth:grant-type:saml1_1-bearer";
  }
  if (t === "urn:oasis:names:tc:SAML:2.0:assertion" || t.endsWith("#SAMLV2.0")) {
    return "urn:ietf:params:oauth:grant-type:saml2-bearer";
  }
  return undefined;
}

/** The raw content of every `<prefix:tag …>…</prefix:tag>` (greedy, as MSAL Python's `findall_content`). */
function contentsOf(xml: string, tag: string): string[] {
  const pattern = new RegExp(`<(?:[\\w.-]+:)?${tag}(?:\\s[^>]*)?>([\\s\\S]*)</(?:[\\w.-]+:)?${tag}>`, "g");
  return [...xml.matchAll(pattern)].map((m) => m[1]!);
}

/** The assertion cut byte-exactly out of an RSTR (1.3 collection or 2005 single response). */
export function assertionFromRstr(rstr: string): SamlAssertion | undefined {
  for (const response of contentsOf(rstr, "RequestSecurityTokenResponse")) {
    const tokenType = contentsOf(response, "TokenType")[0];
    const token = contentsOf(response, "RequestedSecurityToken")[0]?.trim();
    if (tokenType === undefined || !token) continue;
    const grantType = grantTypeFor(tokenType);
    if (!grantType) return undefined;
    return { xml: token, tokenType: tokenType.trim(), grantType };
  }
  return undefined;
}

/** `s:Body/s:Fault` of a SOAP 1.2 answer: the subcode (e.g. `a:FailedAuthentication`) and reason text. */
export function soapFault(xml: string): { code?: string; subcode?: string; reason?: string } | undefined {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch {
    return undefined;
  }
  const fault = xmlPath(root, [NS.s, "Body"], [NS.s, "Fault"]);
  if (!fault) return undefined;
  const code = xmlPath(fault, [NS.s, "Code"], [NS.s, "Value"])?.text.trim();
  const subcode = xmlPath(fault, [NS.s, "Code"], [NS.s, "Subcode"], [NS.s, "Value"])?.text.trim();
  const reason = xmlPath(fault, [NS.s, "Reason"], [NS.s, "Text"])?.text.trim();
  return { ...(code ? { code } : {}), ...(subcode ? { subcode } : {}), ...(reason ? { reason } : {}) };
}

interface FaultKind {
  code: ErrorCode;
  title: string;
  hint: (user: string, adfs: string, appliesTo: string) => string;
}

// AD FS hides most causes behind ID3242 / MSIS3127; where the reason names the Active Directory state
// (Win32 texts: 1909 locked out, 1330 password expired, 1331 disabled) it is told apart.
const FAULTS: ReadonlyArray<{ test: RegExp } & FaultKind> = [
  {
    test: /locked out|account is locked/i,
    code: "ACCOUNT_LOCKED",
    title: "the account is locked in Active Directory",
    hint: (user, adfs) =>
      `AD FS (${adfs}) refused ${user}: the on-premises account is locked out. Wait for the AD lockout (or AD FS extranet lockout) to end or have it unlocked in Active Directory, and check that the stored password is current — a wrong stored password locks it again.`,
  },
  {
    test: /password (for this account )?has expired|password.*expired|must change/i,
    code: "PASSWORD_EXPIRED",
    title: "the Active Directory password has expired",
    hint: (user, adfs) =>
      `AD FS (${adfs}) refused ${user}: the on-premises password has expired. Reset it in Active Directory, store the new one, and set this service account's password never to expire.`,
  },
  {
    test: /disabled/i,
    code: "ACCOUNT_DISABLED",
    title: "the account is disabled in Active Directory",
    hint: (user, adfs) =>
      `AD FS (${adfs}) refused ${user}: enable the account in Active Directory (Active Directory Users and Computers → Account → Account is disabled: off).`,
  },
];

/**
 * MSIS7007: AD FS has no relying party trust for the AppliesTo (`urn:federation:MicrosoftOnline`, the
 * "Microsoft Office 365 Identity Platform" trust Microsoft Entra Connect creates), or the user may not use
 * it. Nothing to do with the password.
 */
const NO_RELYING_PARTY: FaultKind = {
  code: "CONFIG_INVALID",
  title: "AD FS has no relying party trust for Microsoft Online",
  hint: (user, adfs, appliesTo) =>
    `AD FS (${adfs}) does not know the relying party trust '${appliesTo}' (MSIS7007) or does not let ${user} use it — this is not a wrong password. On AD FS, AD FS Management → Relying Party Trusts must list "Microsoft Office 365 Identity Platform" with the identifier ${appliesTo} (if it is missing, repair the trust in Microsoft Entra Connect), and its access control policy must permit ${user}.`,
};

/**
 * a:InvalidSecurity ("An error occurred when verifying security for the message"): AD FS (WCF) could not
 * verify the request's WS-Security header. A wrong password is a:FailedAuthentication instead.
 */
const INVALID_SECURITY: FaultKind = {
  code: "CONFIG_INVALID",
  title: "AD FS could not verify the security of the WS-Trust request",
  hint: (_user, adfs) =>
    `AD FS (${adfs}) could not verify the security header of the WS-Trust request (a:InvalidSecurity) — this is not a wrong password. Most often the clocks differ: the request's timestamp is made on this host and AD FS refuses one outside its allowed clock skew, so synchronise this host and the AD FS servers with a reliable time source (NTP). Otherwise check that the address is AD FS's usernamemixed endpoint (…/adfs/services/trust/13/usernamemixed, enabled in AD FS Management → Service → Endpoints) and that no proxy in between rewrites the request.`,
};

const WRONG_CREDENTIALS: FaultKind = {
  code: "AUTH_FAILED",
  title: "the username or password was refused",
  hint: (user, adfs) =>
    `AD FS (${adfs}) refused the username or password of ${user}: the password of a federated user is the on-premises Active Directory password, checked by AD FS, not Entra ID. Check it (no leading or trailing spaces), and that the account may use the usernamemixed endpoint (AD FS access control policy).`,
};

/**
 * The assertion from a WS-Trust answer, or the typed error for its fault. AD FS answers 500 even for a
 * wrong password, so the status alone says nothing: the body decides.
 */
export function readWsTrustResponse(
  res: HttpResponse,
  endpoint: WsTrustEndpoint,
  username: string,
): SamlAssertion {
  const where = `POST ${describeUrl(endpoint.address)}`;
  const adfs = describeUrl(endpoint.address);
  const assertion = res.status < 400 ? assertionFromRstr(res.text) : undefined;
  if (assertion) {
    // Rotating: used once, then forgotten by the provider (the bounded set is the backstop).
    registerSecret(assertion.xml, { rotating: true });
    return assertion;
  }
  const fault = soapFault(res.text);
  if (fault) {
    const text = `${fault.subcode ?? fault.code ?? "fault"}: ${fault.reason ?? "(no reason)"}`;
    const reason = fault.reason ?? "";
    const subcode = fault.subcode ?? fault.code ?? "";
    // Before the generic refusals: MSIS7007 arrives as a:RequestFailed / MSIS3127 like a refusal does.
    const known = /\bMSIS7007\b/.test(reason)
      ? NO_RELYING_PARTY
      : /(^|:)InvalidSecurity$/i.test(subcode)
        ? INVALID_SECURITY
        : (FAULTS.find((f) => f.test.test(reason)) ??
          (/FailedAuthentication|ID3242|MSIS3127|RequestFailed/i.test(text) ? WRONG_CREDENTIALS : undefined));
    if (known) {
      // MSIS7007 quotes the AppliesTo it did not know; the request's own is the realm's (usually the default).
      const appliesTo = /relying party trust '([^']*)'/.exec(reason)?.[1] || DEFAULT_AUDIENCE_URN;
      return fail(
        known.code,
        `AD FS refused the sign-in of ${username}: ${known.title} (${text.slice(0, 300)})`,
        {
          status: res.status,
          serverCode: known === NO_RELYING_PARTY ? "MSIS7007" : (fault.subcode ?? fault.code),
          hint: known.hint(username, adfs, appliesTo),
        },
      );
    }
    return fail("AUTH_FAILED", `AD FS at ${adfs} answered a SOAP fault (${text.slice(0, 300)})`, {
      status: res.status,
      serverCode: fault.subcode ?? fault.code,
      hint: `Look the fault up in the AD FS Admin event log on the federation server (${adfs}); federation: "direct" skips AD FS if the tenant allows cloud password validation.`,
    });
  }
  if (res.status >= 500 || res.status === 404 || res.status === 429) {
    return fail(
      res.status === 429 ? "THROTTLED" : "SERVER_ERROR",
      `${where} answered ${res.status} without a SOAP answer`,
      {
        status: res.status,
        retryable: true,
        hint: `AD FS (${adfs}) or a proxy in front of it failed; check that the WS-Trust usernamemixed endpoint is enabled on AD FS (AD FS Management → Service → Endpoints).`,
      },
    );
  }
  return fail(
    "INVALID_RESPONSE",
    `${where} answered ${res.status} with neither a SAML assertion nor a SOAP fault`,
    {
      status: res.status,
      hint: `Check that ${adfs} is the AD FS usernamemixed endpoint (a proxy or web application proxy may be answering) and that it issues SAML 1.1 or 2.0 tokens.`,
    },
  );
}

function fail(
  code: ErrorCode,
  message: string,
  options: { status?: number; serverCode?: string | undefined; hint: string; retryable?: boolean },
): never {
  throw new M365MailError(code, message, {
    source: SOURCE,
    status: options.status,
    ...(options.serverCode ? { serverCode: options.serverCode } : {}),
    ...(options.retryable !== undefined ? { retryable: options.retryable } : {}),
    hint: options.hint,
  });
}

/** `assertion=` of the SAML bearer grant: base64url without padding, as RFC 7522 and MSAL Python send it. */
export function encodeAssertion(assertion: SamlAssertion): string {
  const encoded = Buffer.from(assertion.xml, "utf8").toString("base64url");
  registerSecret(encoded, { rotating: true });
  return encoded;
}
