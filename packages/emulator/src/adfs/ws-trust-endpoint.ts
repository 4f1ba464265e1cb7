import { randomUUID } from "node:crypto";
import { escapeXml, parseXml, type XmlElement, xmlChild, xmlPath } from "@m365-mail/core";
import type { RequestCounters } from "../context.js";
import type { DirectoryStore } from "../directory-store.js";
import { userObjectId } from "../directory-store.js";
import { federationOf } from "./federation.js";
import { buildSignedAssertion, ENTRA_AUDIENCES, type SigningMaterial } from "./saml-assertion.js";

export type WsTrustVersion = "13" | "2005";

const S = "http://www.w3.org/2003/05/soap-envelope";
const WSA = "http://www.w3.org/2005/08/addressing";
const WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy";
const WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";

export const VERSIONS: Record<
  WsTrustVersion,
  { ns: string; action: string; requestType: string; keyTypes: string[]; responseAction: string }
> = {
  "13": {
    ns: "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
    action: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue",
    requestType: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue",
    keyTypes: ["http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer"],
    responseAction: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RSTRC/IssueFinal",
  },
  "2005": {
    ns: "http://schemas.xmlsoap.org/ws/2005/02/trust",
    action: "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue",
    requestType: "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue",
    keyTypes: ["http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"],
    responseAction: "http://schemas.xmlsoap.org/ws/2005/02/trust/RSTR/Issue",
  },
};

export interface SoapAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** The faults this AD FS answers. Real AD FS hides most causes behind ID3242 / MSIS3127. */
export type FaultKind =
  | "action"
  | "invalid-request"
  | "invalid-security"
  | "relying-party"
  | "wrong-password"
  | "locked"
  | "disabled"
  | "password-expired";

const FAULTS: Record<
  FaultKind,
  { code: string; subcode: string; subNs: string; reason: (p: string) => string }
> = {
  // WCF's own answer when SOAPAction and the message do not fit the endpoint's contract.
  action: {
    code: "s:Sender",
    subcode: "a:ActionNotSupported",
    subNs: WSA,
    reason: (p) =>
      `The message with Action '${p}' cannot be processed at the receiver, due to a ContractFilter mismatch at the EndpointDispatcher. This may be because of either a contract mismatch (mismatched Actions between sender and receiver) or a binding/security mismatch between the sender and the receiver.`,
  },
  "invalid-request": {
    code: "s:Sender",
    subcode: "a:InvalidRequest",
    subNs: "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
    reason: (p) => `MSIS3127: The specified request failed. ${p}`,
  },
  "invalid-security": {
    code: "s:Sender",
    subcode: "a:InvalidSecurity",
    subNs: WSSE,
    reason: () => "An error occurred when verifying security for the message.",
  },
  "relying-party": {
    code: "s:Sender",
    subcode: "a:RequestFailed",
    subNs: "http://schemas.microsoft.com/ws/2008/06/identity/securitytokenservice",
    reason: (p) =>
      `MSIS3127: The specified request failed. MSIS7007: The requested relying party trust '${p}' is unspecified or unsupported.`,
  },
  "wrong-password": {
    code: "s:Sender",
    subcode: "a:FailedAuthentication",
    subNs: WSSE,
    reason: () => "ID3242: The security token could not be authenticated or authorized.",
  },
  // Win32 texts of ERROR_ACCOUNT_LOCKED_OUT (1909), ERROR_ACCOUNT_DISABLED (1331), ERROR_PASSWORD_EXPIRED (1330).
  locked: {
    code: "s:Sender",
    subcode: "a:FailedAuthentication",
    subNs: WSSE,
    reason: () =>
      "MSIS3127: The specified request failed. The referenced account is currently locked out and may not be logged on to.",
  },
  disabled: {
    code: "s:Sender",
    subcode: "a:FailedAuthentication",
    subNs: WSSE,
    reason: () =>
      "MSIS3127: The specified request failed. This user can't sign in because this account is currently disabled.",
  },
  "password-expired": {
    code: "s:Sender",
    subcode: "a:FailedAuthentication",
    subNs: WSSE,
    reason: () => "MSIS3127: The specified request failed. The password for this account has expired.",
  },
};

/** A SOAP 1.2 fault; AD FS answers 500 for every fault, a wrong password included. */
export function soapFault(kind: FaultKind, param = ""): SoapAnswer {
  const f = FAULTS[kind];
  return {
    status: 500,
    contentType: "application/soap+xml; charset=utf-8",
    body: `<s:Envelope xmlns:s="${S}" xmlns:a="${WSA}"><s:Header><a:Action s:mustUnderstand="1">http://www.w3.org/2005/08/addressing/soap/fault</a:Action></s:Header><s:Body><s:Fault><s:Code><s:Value>${f.code}</s:Value><s:Subcode><s:Value xmlns:a="${f.subNs}">${f.subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">${escapeXml(f.reason(param))}</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`,
  };
}

export interface WsTrustContext {
  store: DirectoryStore;
  counters: RequestCounters;
  signing: SigningMaterial;
  /** `http://{host}/adfs/services/trust`, the Issuer of every assertion. */
  issuer: string;
  assertionLifetimeSeconds: number;
}

/** The SOAPAction: the header (SOAP 1.1 style, which MSAL sends) or the content type's `action` parameter. */
function soapAction(headers: Record<string, string | string[] | undefined>): string | undefined {
  const header = headers.soapaction;
  const value = Array.isArray(header) ? header[0] : header;
  if (value) return value.replace(/^"|"$/g, "");
  const type = String(headers["content-type"] ?? "");
  return /;\s*action="?([^";]+)"?/i.exec(type)?.[1];
}

const text = (e: XmlElement | undefined) => e?.text.trim() ?? "";

/** `POST /adfs/services/trust/{13|2005}/usernamemixed`. */
export function handleWsTrust(
  ctx: WsTrustContext,
  version: WsTrustVersion,
  headers: Record<string, string | string[] | undefined>,
  body: string,
): SoapAnswer {
  const v = VERSIONS[version];
  const fault = (kind: FaultKind, param?: string) => {
    ctx.counters.increment(`adfs.wstrust.fault.${kind}`);
    return soapFault(kind, param);
  };
  const contentType = String(headers["content-type"] ?? "");
  if (!/^application\/soap\+xml/i.test(contentType)) {
    // WCF's 415 for a SOAP 1.1 (text/xml) request on a SOAP 1.2 binding.
    return {
      status: 415,
      contentType: "text/plain; charset=utf-8",
      body: `Cannot process the message because the content type '${contentType}' was not the expected type 'application/soap+xml; charset=utf-8'.`,
    };
  }
  const action = soapAction(headers) ?? "";
  if (action !== v.action) return fault("action", action);

  let envelope: XmlElement;
  try {
    envelope = parseXml(body);
  } catch (error) {
    return fault("invalid-request", `The request is not well-formed XML (${(error as Error).message}).`);
  }
  if (envelope.ns !== S || envelope.local !== "Envelope") return fault("action", action);
  const header = xmlChild(envelope, S, "Header");
  // The message's own Action must agree with SOAPAction, and the RST must be in the version's namespace.
  if (text(xmlChild(header, WSA, "Action")) !== v.action)
    return fault("action", text(xmlChild(header, WSA, "Action")));
  const rst = xmlPath(envelope, [S, "Body"], [v.ns, "RequestSecurityToken"]);
  if (!rst) return fault("action", action);
  if (text(xmlChild(rst, v.ns, "RequestType")) !== v.requestType) {
    return fault("invalid-request", `RequestType must be ${v.requestType}.`);
  }
  const keyType = text(xmlChild(rst, v.ns, "KeyType"));
  if (keyType && !v.keyTypes.includes(keyType))
    return fault("invalid-request", `KeyType ${keyType} is not supported.`);

  const token = xmlPath(header, [WSSE, "Security"], [WSSE, "UsernameToken"]);
  const username = text(xmlChild(token, WSSE, "Username"));
  const passwordElement = xmlChild(token, WSSE, "Password");
  if (!token || !username || !passwordElement) return fault("invalid-security");
  const expires = Date.parse(text(xmlPath(header, [WSSE, "Security"], [WSU, "Timestamp"], [WSU, "Expires"])));
  if (Number.isFinite(expires) && expires < Date.now() - 300_000) return fault("invalid-security");

  const appliesTo = text(xmlPath(rst, [WSP, "AppliesTo"], [WSA, "EndpointReference"], [WSA, "Address"]));
  if (!ENTRA_AUDIENCES.includes(appliesTo)) return fault("relying-party", appliesTo);

  ctx.counters.increment(`adfs.wstrust.${version}:${username.toLowerCase()}`);
  const fed = federationOf(ctx.store, username);
  // AD FS knows only its own directory: an unknown or cloud-only user fails like a wrong password.
  if (!fed) return fault("wrong-password");
  const user = fed.user;
  if (user.locked) return fault("locked");
  if (passwordElement.text !== user.password) return fault("wrong-password");
  if (user.disabled) return fault("disabled");
  if (user.passwordExpired) return fault("password-expired");

  const now = new Date();
  const { xml } = buildSignedAssertion(
    {
      version: fed.samlVersion,
      issuer: ctx.issuer,
      audience: appliesTo,
      upn: user.upn,
      immutableId: Buffer.from(userObjectId(user).replace(/-/g, ""), "hex").toString("base64"),
      lifetimeSeconds: ctx.assertionLifetimeSeconds,
      now,
    },
    ctx.signing,
  );
  ctx.counters.increment(`adfs.issued.saml${fed.samlVersion === "1.1" ? "11" : "20"}`);
  return {
    status: 200,
    contentType: "application/soap+xml; charset=utf-8",
    body: rstr(version, fed.samlVersion, xml, appliesTo, now, ctx.assertionLifetimeSeconds),
  };
}

function rstr(
  version: WsTrustVersion,
  saml: "1.1" | "2.0",
  assertion: string,
  appliesTo: string,
  now: Date,
  lifetimeSeconds: number,
): string {
  const v = VERSIONS[version];
  const created = now.toISOString();
  const expires = new Date(now.getTime() + lifetimeSeconds * 1000).toISOString();
  const timestampExpires = new Date(now.getTime() + 300_000).toISOString();
  // WS-Trust 1.3 names the token type by its SAML URI, 2005 by the WSS SAML token profile's.
  const tokenType =
    version === "13"
      ? saml === "1.1"
        ? "urn:oasis:names:tc:SAML:1.0:assertion"
        : "urn:oasis:names:tc:SAML:2.0:assertion"
      : `http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV${saml === "1.1" ? "1.1" : "2.0"}`;
  const inner = `<t:Lifetime><wsu:Created xmlns:wsu="${WSU}">${created}</wsu:Created><wsu:Expires xmlns:wsu="${WSU}">${expires}</wsu:Expires></t:Lifetime><wsp:AppliesTo xmlns:wsp="${WSP}"><wsa:EndpointReference xmlns:wsa="${WSA}"><wsa:Address>${escapeXml(appliesTo)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><t:RequestedSecurityToken>${assertion}</t:RequestedSecurityToken><t:TokenType>${tokenType}</t:TokenType><t:RequestType>${v.requestType}</t:RequestType><t:KeyType>${v.keyTypes[0]}</t:KeyType>`;
  const responseBody =
    version === "13"
      ? `<t:RequestSecurityTokenResponseCollection xmlns:t="${v.ns}"><t:RequestSecurityTokenResponse>${inner}</t:RequestSecurityTokenResponse></t:RequestSecurityTokenResponseCollection>`
      : `<t:RequestSecurityTokenResponse xmlns:t="${v.ns}">${inner}</t:RequestSecurityTokenResponse>`;
  return `<s:Envelope xmlns:s="${S}" xmlns:a="${WSA}" xmlns:u="${WSU}"><s:Header><a:Action s:mustUnderstand="1">${v.responseAction}</a:Action><a:RelatesTo>urn:uuid:${randomUUID()}</a:RelatesTo><o:Security s:mustUnderstand="1" xmlns:o="${WSSE}"><u:Timestamp u:Id="_0"><u:Created>${created}</u:Created><u:Expires>${timestampExpires}</u:Expires></u:Timestamp></o:Security></s:Header><s:Body>${responseBody}</s:Body></s:Envelope>`;
}
