import { M365MailError, parseXml, xmlPath } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { chooseEndpoint, NS, usernamePasswordEndpoints, versionFromPath } from "../src/federation/mex.js";
import {
  assertionFromRstr,
  buildRst,
  grantTypeFor,
  readWsTrustResponse,
  soapFault,
} from "../src/federation/ws-trust.js";

const SP13 = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702";
const SP05 = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy";
const A13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue";
const A05 = "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue";

/** A MEX document in AD FS's shape, with only the parts the rules look at. */
function mex(ports: Array<{ name: string; kind: "u13" | "u05" | "cert13"; address: string }>): string {
  const policy = (p: (typeof ports)[number]) => {
    const sp = p.kind === "u05" ? SP05 : SP13;
    const token =
      p.kind === "cert13"
        ? `<sp:EndorsingSupportingTokens xmlns:sp="${sp}"><wsp:Policy><sp:X509Token/></wsp:Policy></sp:EndorsingSupportingTokens>`
        : `<sp:${p.kind === "u13" ? "SignedEncryptedSupportingTokens" : "SignedSupportingTokens"} xmlns:sp="${sp}"><wsp:Policy><sp:UsernameToken><wsp:Policy><sp:WssUsernameToken10/></wsp:Policy></sp:UsernameToken></wsp:Policy></sp:${p.kind === "u13" ? "SignedEncryptedSupportingTokens" : "SignedSupportingTokens"}>`;
    // The same prefix "sp" names both security-policy namespaces, as in AD FS's real document.
    return `<wsp:Policy wsu:Id="${p.name}_policy"><wsp:ExactlyOne><wsp:All><sp:TransportBinding xmlns:sp="${sp}"/>${token}</wsp:All></wsp:ExactlyOne></wsp:Policy>`;
  };
  const binding = (p: (typeof ports)[number]) =>
    `<wsdl:binding name="${p.name}" type="tns:x"><wsp:PolicyReference URI="#${p.name}_policy"/><soap12:binding transport="http://schemas.xmlsoap.org/soap/http"/><wsdl:operation name="Issue"><soap12:operation soapAction="${p.kind === "u05" ? A05 : A13}"/></wsdl:operation></wsdl:binding>`;
  const port = (p: (typeof ports)[number]) =>
    `<wsdl:port name="${p.name}" binding="tns:${p.name}"><wsa10:EndpointReference><wsa10:Address>${p.address}</wsa10:Address></wsa10:EndpointReference></wsdl:port>`;
  return `<wsdl:definitions xmlns:wsdl="${NS.wsdl}" xmlns:wsp="${NS.wsp}" xmlns:wsu="${NS.wsu}" xmlns:soap12="${NS.soap12}" xmlns:wsa10="${NS.wsa10}" xmlns:tns="urn:tns">${ports.map(policy).join("")}${ports.map(binding).join("")}<wsdl:service name="s">${ports.map(port).join("")}</wsdl:service></wsdl:definitions>`;
}

describe("MEX: the username/password endpoint", () => {
  it("finds usernamemixed ports by policy (not by URL), https only, and prefers WS-Trust 1.3", () => {
    const endpoints = usernamePasswordEndpoints(
      mex([
        {
          name: "Cert13",
          kind: "cert13",
          address: "https://sts.example.com/adfs/services/trust/13/usernamemixed-looking",
        },
        {
          name: "User05",
          kind: "u05",
          address: "https://sts.example.com/adfs/services/trust/2005/usernamemixed",
        },
        {
          name: "User13Http",
          kind: "u13",
          address: "http://sts.example.com/adfs/services/trust/13/usernamemixed",
        },
        {
          name: "User13",
          kind: "u13",
          address: "https://sts.example.com/adfs/services/trust/13/usernamemixed",
        },
      ]),
    );
    expect(endpoints).toEqual([
      { address: "https://sts.example.com/adfs/services/trust/2005/usernamemixed", version: "2005" },
      { address: "https://sts.example.com/adfs/services/trust/13/usernamemixed", version: "1.3" },
    ]);
    expect(chooseEndpoint(endpoints)?.version).toBe("1.3");
    expect(chooseEndpoint(endpoints.slice(0, 1))?.version).toBe("2005");
  });

  it("finds nothing when only certificate or Windows ports are offered", () => {
    expect(
      usernamePasswordEndpoints(
        mex([{ name: "C", kind: "cert13", address: "https://x/13/certificatemixed" }]),
      ),
    ).toEqual([]);
    expect(chooseEndpoint([])).toBeUndefined();
  });

  it("infers the version from an active-auth URL", () => {
    expect(versionFromPath("https://x/adfs/services/trust/2005/usernamemixed")).toBe("2005");
    expect(versionFromPath("https://x/adfs/services/trust/13/usernamemixed")).toBe("1.3");
    expect(versionFromPath("https://x/adfs/ls")).toBeUndefined();
  });
});

describe("WS-Trust RST and RSTR", () => {
  it("escapes the password and user in the RST and uses the version's namespace, action and key type", () => {
    const endpoint = {
      address: "https://sts.example.com/adfs/services/trust/2005/usernamemixed",
      version: "2005" as const,
    };
    const rst = buildRst({
      endpoint,
      username: "a&b@example.com",
      password: `p<&>"'`,
      appliesTo: "urn:federation:MicrosoftOnline",
    });
    expect(rst.headers.soapaction).toBe(A05);
    const root = parseXml(rst.body);
    const token = xmlPath(
      root,
      [NS.s, "Header"],
      ["http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd", "Security"],
      ["http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd", "UsernameToken"],
    );
    expect(token?.children.map((c) => c.text)).toEqual(["a&b@example.com", `p<&>"'`]);
    const request = xmlPath(root, [NS.s, "Body"], [NS.wst2005, "RequestSecurityToken"]);
    expect(request?.children.map((c) => c.text.trim()).slice(1)).toEqual([
      "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey",
      "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue",
    ]);
  });

  it("cuts the assertion byte-exactly, with its inner namespace declarations and whitespace", () => {
    const assertion = `<saml:Assertion  MajorVersion="1" xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion">\n  <saml:Conditions/>\n</saml:Assertion>`;
    const rstr = `<s:Envelope xmlns:s="${NS.s}"><s:Body><trust:RequestSecurityTokenResponseCollection xmlns:trust="${NS.wst13}"><trust:RequestSecurityTokenResponse><trust:RequestedSecurityToken>${assertion}</trust:RequestedSecurityToken><trust:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</trust:TokenType></trust:RequestSecurityTokenResponse></trust:RequestSecurityTokenResponseCollection></s:Body></s:Envelope>`;
    expect(assertionFromRstr(rstr)).toEqual({
      xml: assertion,
      tokenType: "urn:oasis:names:tc:SAML:1.0:assertion",
      grantType: "urn:ietf:params:oauth:grant-type:saml1_1-bearer",
    });
  });

  it("maps both token-type spellings to the SAML 1.1 and 2.0 grants", () => {
    expect(grantTypeFor("urn:oasis:names:tc:SAML:2.0:assertion")).toBe(
      "urn:ietf:params:oauth:grant-type:saml2-bearer",
    );
    expect(grantTypeFor("http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0")).toBe(
      "urn:ietf:params:oauth:grant-type:saml2-bearer",
    );
    expect(grantTypeFor("http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1")).toBe(
      "urn:ietf:params:oauth:grant-type:saml1_1-bearer",
    );
    expect(grantTypeFor("urn:example:jwt")).toBeUndefined();
  });

  it("reads a SOAP 1.2 fault and types it; a 500 without SOAP is a retryable SERVER_ERROR", () => {
    const fault = `<s:Envelope xmlns:s="${NS.s}"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value xmlns:a="urn:x">a:RequestFailed</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">MSIS3127: The specified request failed.</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`;
    expect(soapFault(fault)).toEqual({
      code: "s:Sender",
      subcode: "a:RequestFailed",
      reason: "MSIS3127: The specified request failed.",
    });
    const endpoint = {
      address: "https://sts.example.com/adfs/services/trust/13/usernamemixed",
      version: "1.3" as const,
    };
    const typed = () =>
      readWsTrustResponse({ status: 500, headers: {}, text: fault }, endpoint, "u@example.com");
    expect(typed).toThrow(expect.objectContaining({ code: "AUTH_FAILED", serverCode: "a:RequestFailed" }));
    const html = () =>
      readWsTrustResponse({ status: 503, headers: {}, text: "<html>busy</html>" }, endpoint, "u@example.com");
    expect(html).toThrow(expect.objectContaining({ code: "SERVER_ERROR", retryable: true }));
  });
});

/** A SOAP 1.2 fault in AD FS's shape (as the emulator and MSAL Python's test_wstrust.py show it). */
function adfsFault(subcode: string, subNs: string, reason: string): string {
  return `<s:Envelope xmlns:s="${NS.s}" xmlns:a="${NS.wsa10}"><s:Header><a:Action s:mustUnderstand="1">http://www.w3.org/2005/08/addressing/soap/fault</a:Action></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value xmlns:a="${subNs}">${subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">${reason}</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`;
}

const WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";

// Regression (audit, bug 2): faults that say nothing about the password were reported as a wrong one.
describe("AD FS faults that are not a wrong password", () => {
  const endpoint = {
    address: "https://sts.adatum.com/adfs/services/trust/13/usernamemixed",
    version: "1.3" as const,
  };
  const refusal = (text: string): M365MailError => {
    try {
      readWsTrustResponse({ status: 500, headers: {}, text }, endpoint, "ops@adatum.com");
    } catch (error) {
      expect(error).toBeInstanceOf(M365MailError);
      return error as M365MailError;
    }
    throw new Error("readWsTrustResponse did not throw");
  };

  it("MSIS7007 (no relying party trust for urn:federation:MicrosoftOnline) is CONFIG_INVALID naming the trust", () => {
    const error = refusal(
      adfsFault(
        "a:RequestFailed",
        WST13,
        "MSIS3127: The specified request failed. MSIS7007: The requested relying party trust 'urn:federation:MicrosoftOnline' is unspecified or unsupported.",
      ),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.retryable).toBe(false);
    expect(error.serverCode).toBe("MSIS7007");
    expect(error.message).toMatch(/relying party trust/);
    expect(error.hint).toMatch(/relying party trust/);
    expect(error.hint).toContain("urn:federation:MicrosoftOnline");
    expect(error.hint).toContain("Microsoft Office 365 Identity Platform");
    expect(error.hint).toContain("https://sts.adatum.com");
    expect(error.hint).not.toMatch(/username or password/);
  });

  it("a:InvalidSecurity (the request's security could not be verified) names the clocks and the endpoint, not the password", () => {
    const error = refusal(
      adfsFault("a:InvalidSecurity", WSSE, "An error occurred when verifying security for the message."),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.serverCode).toBe("a:InvalidSecurity");
    expect(error.hint).toMatch(/clock/i);
    expect(error.hint).toMatch(/usernamemixed/);
    expect(error.hint).toMatch(/not a wrong password/);
    expect(error.hint).not.toMatch(/refused the username or password/);
  });

  it("a:FailedAuthentication stays AUTH_FAILED (a wrong password or an AD FS access policy)", () => {
    const error = refusal(
      adfsFault(
        "a:FailedAuthentication",
        WSSE,
        "ID3242: The security token could not be authenticated or authorized.",
      ),
    );
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.hint).toMatch(/refused the username or password/);
  });
});
