/**
 * AD FS's WS-MetadataExchange document (`/adfs/services/trust/mex`), modelled on a real one (MSAL
 * Python's `tests/microsoft.mex.xml`): policies, bindings and ports for certificate, Windows and
 * username/password sign-in, in both WS-Trust 2005 and 1.3. Only the usernamemixed ports serve a
 * password; a client must pick them by policy, not by URL.
 */
export interface MexOptions {
  /** AD FS origin, e.g. `https://127.0.0.1:44444`. */
  origin: string;
  /** Offer `/adfs/services/trust/13/usernamemixed`. */
  wsTrust13: boolean;
  /** Offer `/adfs/services/trust/2005/usernamemixed`. */
  wsTrust2005: boolean;
}

const SP13 = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702";
const SP2005 = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy";
const ACTION13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue";
const ACTION2005 = "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue";

const transportBinding = (sp: string) =>
  `<sp:TransportBinding xmlns:sp="${sp}"><wsp:Policy><sp:TransportToken><wsp:Policy><sp:HttpsToken/></wsp:Policy></sp:TransportToken><sp:AlgorithmSuite><wsp:Policy><sp:Basic256/></wsp:Policy></sp:AlgorithmSuite><sp:Layout><wsp:Policy><sp:Strict/></wsp:Policy></sp:Layout><sp:IncludeTimestamp/></wsp:Policy></sp:TransportBinding>`;

const usernamePolicy = (id: string, sp: string, supporting: string) => `
  <wsp:Policy wsu:Id="${id}">
    <wsp:ExactlyOne><wsp:All>
      ${transportBinding(sp)}
      <sp:${supporting} xmlns:sp="${sp}"><wsp:Policy><sp:UsernameToken sp:IncludeToken="${sp}/IncludeToken/AlwaysToRecipient"><wsp:Policy><sp:WssUsernameToken10/></wsp:Policy></sp:UsernameToken></wsp:Policy></sp:${supporting}>
      <wsaw:UsingAddressing/>
    </wsp:All></wsp:ExactlyOne>
  </wsp:Policy>`;

const certificatePolicy = (id: string, sp: string) => `
  <wsp:Policy wsu:Id="${id}">
    <wsp:ExactlyOne><wsp:All>
      ${transportBinding(sp)}
      <sp:EndorsingSupportingTokens xmlns:sp="${sp}"><wsp:Policy><sp:X509Token sp:IncludeToken="${sp}/IncludeToken/AlwaysToRecipient"><wsp:Policy><sp:RequireThumbprintReference/><sp:WssX509V3Token10/></wsp:Policy></sp:X509Token></wsp:Policy></sp:EndorsingSupportingTokens>
      <wsaw:UsingAddressing/>
    </wsp:All></wsp:ExactlyOne>
  </wsp:Policy>`;

const windowsPolicy = (id: string) => `
  <wsp:Policy wsu:Id="${id}">
    <wsp:ExactlyOne><wsp:All>
      <http:NegotiateAuthentication xmlns:http="http://schemas.microsoft.com/ws/06/2004/policy/http"/>
      ${transportBinding(SP2005)}
      <wsaw:UsingAddressing/>
    </wsp:All></wsp:ExactlyOne>
  </wsp:Policy>`;

const binding = (name: string, type: string, action: string, operation: string) => `
  <wsdl:binding name="${name}" type="tns:${type}">
    <wsp:PolicyReference URI="#${name}_policy"/>
    <soap12:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="${operation}">
      <soap12:operation soapAction="${action}" style="document"/>
      <wsdl:input><soap12:body use="literal"/></wsdl:input>
      <wsdl:output><soap12:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>`;

const port = (name: string, address: string) => `
    <wsdl:port name="${name}" binding="tns:${name}">
      <soap12:address location="${address}"/>
      <wsa10:EndpointReference><wsa10:Address>${address}</wsa10:Address></wsa10:EndpointReference>
    </wsdl:port>`;

export function mexDocument(options: MexOptions): string {
  const base = `${options.origin}/adfs/services/trust`;
  const policies: string[] = [];
  const bindings: string[] = [];
  const ports: string[] = [];
  // 2005: certificatemixed and windowstransport (no password) and, when on, usernamemixed.
  policies.push(certificatePolicy("CertificateWSTrustBinding_IWSTrustFeb2005Async_policy", SP2005));
  bindings.push(
    binding(
      "CertificateWSTrustBinding_IWSTrustFeb2005Async",
      "IWSTrustFeb2005Async",
      ACTION2005,
      "TrustFeb2005IssueAsync",
    ),
  );
  ports.push(port("CertificateWSTrustBinding_IWSTrustFeb2005Async", `${base}/2005/certificatemixed`));
  if (options.wsTrust2005) {
    policies.push(
      usernamePolicy("UserNameWSTrustBinding_IWSTrustFeb2005Async_policy", SP2005, "SignedSupportingTokens"),
    );
    bindings.push(
      binding(
        "UserNameWSTrustBinding_IWSTrustFeb2005Async",
        "IWSTrustFeb2005Async",
        ACTION2005,
        "TrustFeb2005IssueAsync",
      ),
    );
    ports.push(port("UserNameWSTrustBinding_IWSTrustFeb2005Async", `${base}/2005/usernamemixed`));
  }
  policies.push(windowsPolicy("CustomBinding_IWSTrust13Async_policy"));
  bindings.push(binding("CustomBinding_IWSTrust13Async", "IWSTrust13Async", ACTION13, "Trust13IssueAsync"));
  ports.push(port("CustomBinding_IWSTrust13Async", `${base}/13/windowstransport`));
  if (options.wsTrust13) {
    policies.push(
      usernamePolicy(
        "UserNameWSTrustBinding_IWSTrust13Async_policy",
        SP13,
        "SignedEncryptedSupportingTokens",
      ),
    );
    bindings.push(
      binding("UserNameWSTrustBinding_IWSTrust13Async", "IWSTrust13Async", ACTION13, "Trust13IssueAsync"),
    );
    ports.push(port("UserNameWSTrustBinding_IWSTrust13Async", `${base}/13/usernamemixed`));
  }
  policies.push(certificatePolicy("CertificateWSTrustBinding_IWSTrust13Async_policy", SP13));
  bindings.push(
    binding("CertificateWSTrustBinding_IWSTrust13Async", "IWSTrust13Async", ACTION13, "Trust13IssueAsync"),
  );
  ports.push(port("CertificateWSTrustBinding_IWSTrust13Async", `${base}/13/certificatemixed`));

  return `<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions name="SecurityTokenService" targetNamespace="http://schemas.microsoft.com/ws/2008/06/identity/securitytokenservice" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:t="http://schemas.xmlsoap.org/ws/2005/02/trust" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="http://schemas.microsoft.com/ws/2008/06/identity/securitytokenservice" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:wsa10="http://www.w3.org/2005/08/addressing" xmlns:wsaw="http://www.w3.org/2006/05/addressing/wsdl" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:trust="http://docs.oasis-open.org/ws-sx/ws-trust/200512" xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">${policies.join("")}
  <wsdl:portType name="IWSTrustFeb2005Async"><wsdl:operation name="TrustFeb2005IssueAsync"><wsdl:input wsaw:Action="${ACTION2005}" message="tns:IWSTrustFeb2005Async_TrustFeb2005IssueAsync_InputMessage"/><wsdl:output wsaw:Action="http://schemas.xmlsoap.org/ws/2005/02/trust/RSTR/Issue" message="tns:IWSTrustFeb2005Async_TrustFeb2005IssueAsync_OutputMessage"/></wsdl:operation></wsdl:portType>
  <wsdl:portType name="IWSTrust13Async"><wsdl:operation name="Trust13IssueAsync"><wsdl:input wsaw:Action="${ACTION13}" message="tns:IWSTrust13Async_Trust13IssueAsync_InputMessage"/><wsdl:output wsaw:Action="http://docs.oasis-open.org/ws-sx/ws-trust/200512/RSTRC/IssueFinal" message="tns:IWSTrust13Async_Trust13IssueAsync_OutputMessage"/></wsdl:operation></wsdl:portType>${bindings.join("")}
  <wsdl:service name="SecurityTokenService">${ports.join("")}
  </wsdl:service>
</wsdl:definitions>`;
}
