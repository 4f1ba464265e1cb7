import { parseXml, type XmlElement, xmlChild, xmlChildren, xmlDescendants, xmlPath } from "@m365-mail/core";

/** The two WS-Trust versions AD FS offers for a username and password. */
export type WsTrustVersion = "1.3" | "2005";

export interface WsTrustEndpoint {
  /** `https://sts.contoso.com/adfs/services/trust/13/usernamemixed` */
  address: string;
  version: WsTrustVersion;
}

export const NS = {
  wsdl: "http://schemas.xmlsoap.org/wsdl/",
  sp: "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702",
  sp2005: "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy",
  wsu: "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
  wsa10: "http://www.w3.org/2005/08/addressing",
  soap12: "http://schemas.xmlsoap.org/wsdl/soap12/",
  wsp: "http://schemas.xmlsoap.org/ws/2004/09/policy",
  s: "http://www.w3.org/2003/05/soap-envelope",
  wst13: "http://docs.oasis-open.org/ws-sx/ws-trust/200512",
  wst2005: "http://schemas.xmlsoap.org/ws/2005/02/trust",
} as const;

export const SOAP_ACTION: Record<WsTrustVersion, string> = {
  "1.3": "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue",
  "2005": "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue",
};

const HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http";

/**
 * `#Id`s of the policies that ask for a username and password over TLS: WS-SecurityPolicy 1.2
 * `SignedEncryptedSupportingTokens` (WS-Trust 1.3 ports) or 2005 `SignedSupportingTokens`, each with a
 * `UsernameToken/WssUsernameToken10` and a `TransportBinding` (MSAL Python's rule, `mex.py`).
 */
function usernamePasswordPolicies(root: XmlElement): Set<string> {
  const ids = new Set<string>();
  for (const policy of xmlChildren(root, NS.wsp, "Policy")) {
    const all = xmlPath(policy, [NS.wsp, "ExactlyOne"], [NS.wsp, "All"]);
    const matches = (sp: string, supporting: string) =>
      xmlPath(
        all,
        [sp, supporting],
        [NS.wsp, "Policy"],
        [sp, "UsernameToken"],
        [NS.wsp, "Policy"],
        [sp, "WssUsernameToken10"],
      ) !== undefined && xmlDescendants(policy, sp, "TransportBinding").length > 0;
    if (matches(NS.sp, "SignedEncryptedSupportingTokens") || matches(NS.sp2005, "SignedSupportingTokens")) {
      const id = policy.attributesNs[`{${NS.wsu}}Id`];
      if (id) ids.add(`#${id}`);
    }
  }
  return ids;
}

/**
 * Every username/password WS-Trust endpoint of an AD FS MEX document, in document order. Only
 * `https://` addresses: the password must not travel in clear. Throws XmlParseError on malformed XML.
 */
export function usernamePasswordEndpoints(mexXml: string): WsTrustEndpoint[] {
  const root = parseXml(mexXml);
  const policies = usernamePasswordPolicies(root);
  const bindings = new Map<string, { policy: string; action: string | undefined }>();
  for (const binding of xmlChildren(root, NS.wsdl, "binding")) {
    if (xmlChild(binding, NS.soap12, "binding")?.attributes.transport !== HTTP_TRANSPORT) continue;
    const action = xmlPath(binding, [NS.wsdl, "operation"], [NS.soap12, "operation"])?.attributes.soapAction;
    for (const ref of xmlChildren(binding, NS.wsp, "PolicyReference")) {
      const name = binding.attributes.name;
      if (name && ref.attributes.URI) bindings.set(name, { policy: ref.attributes.URI, action });
    }
  }
  const endpoints: WsTrustEndpoint[] = [];
  for (const service of xmlChildren(root, NS.wsdl, "service")) {
    for (const port of xmlChildren(service, NS.wsdl, "port")) {
      const bindingName = (port.attributes.binding ?? "").split(":").pop() ?? "";
      const binding = bindings.get(bindingName);
      if (!binding || !policies.has(binding.policy)) continue;
      const address = xmlPath(port, [NS.wsa10, "EndpointReference"], [NS.wsa10, "Address"])?.text.trim();
      if (!address || !isHttpsUrl(address)) continue;
      const version =
        binding.action === SOAP_ACTION["1.3"]
          ? "1.3"
          : binding.action === SOAP_ACTION["2005"]
            ? "2005"
            : undefined;
      if (version) endpoints.push({ address, version });
    }
  }
  return endpoints;
}

/** An `https://` URL that parses: the password must not travel in clear, nor to an address that is none. */
export function isHttpsUrl(value: string): boolean {
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
}

/** WS-Trust 1.3 when offered (MSAL's historical preference), else the first 2005 endpoint. */
export function chooseEndpoint(endpoints: readonly WsTrustEndpoint[]): WsTrustEndpoint | undefined {
  return endpoints.find((e) => e.version === "1.3") ?? endpoints[0];
}

/** The version of an active-auth URL from its path (MSAL Python's fallback when there is no MEX). */
export function versionFromPath(url: string): WsTrustVersion | undefined {
  if (/\/trust\/13\/usernamemixed/i.test(url)) return "1.3";
  if (/\/trust\/2005\/usernamemixed/i.test(url)) return "2005";
  return undefined;
}
