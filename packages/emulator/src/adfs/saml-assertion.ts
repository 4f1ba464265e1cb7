import { createHash, createPublicKey, randomUUID, sign, verify } from "node:crypto";
import { escapeXml, parseXml, type XmlElement, xmlChild, xmlDescendants } from "@m365-mail/core";
import type { SamlVersion } from "./federation.js";

export const SAML1_NS = "urn:oasis:names:tc:SAML:1.0:assertion";
export const SAML2_NS = "urn:oasis:names:tc:SAML:2.0:assertion";
const DS_NS = "http://www.w3.org/2000/09/xmldsig#";

/** Audiences Entra ID accepts in an AD FS assertion (the RST's AppliesTo). */
export const ENTRA_AUDIENCES = [
  "urn:federation:MicrosoftOnline",
  "https://login.microsoftonline.com/extSTS.srf",
];

export interface AssertionInput {
  version: SamlVersion;
  issuer: string;
  audience: string;
  upn: string;
  /** The on-premises objectGUID as Entra ID knows it (base64). */
  immutableId: string;
  lifetimeSeconds: number;
  now?: Date;
}

export interface SigningMaterial {
  keyPem: string;
  certPem: string;
  der: Buffer;
}

const iso = (d: Date) => d.toISOString();

/**
 * A SAML 1.1 or 2.0 bearer assertion as AD FS issues it for Microsoft Online (UPN and ImmutableID),
 * with an enveloped RSA-SHA256 signature. Written with no whitespace, attributes in order and explicit
 * end tags, so the bytes are what they would be canonicalised; the signature covers exactly these
 * bytes, so a client that re-serialises the assertion breaks it — as with a real AD FS token.
 */
export function buildSignedAssertion(
  input: AssertionInput,
  key: SigningMaterial,
): { xml: string; id: string } {
  const now = input.now ?? new Date();
  const notBefore = iso(now);
  const notOnOrAfter = iso(new Date(now.getTime() + input.lifetimeSeconds * 1000));
  const id = `_${randomUUID()}`;
  const upn = escapeXml(input.upn);
  const immutableId = escapeXml(input.immutableId);
  const audience = escapeXml(input.audience);
  let unsigned: string;
  let signatureAfter: string; // the signature goes right after this marker
  if (input.version === "1.1") {
    const subject = `<saml:Subject><saml:NameIdentifier Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">${immutableId}</saml:NameIdentifier><saml:SubjectConfirmation><saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer</saml:ConfirmationMethod></saml:SubjectConfirmation></saml:Subject>`;
    unsigned = `<saml:Assertion xmlns:saml="${SAML1_NS}" AssertionID="${id}" IssueInstant="${iso(now)}" Issuer="${escapeXml(input.issuer)}" MajorVersion="1" MinorVersion="1"><saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><saml:AudienceRestrictionCondition><saml:Audience>${audience}</saml:Audience></saml:AudienceRestrictionCondition></saml:Conditions><saml:AttributeStatement>${subject}<saml:Attribute AttributeName="UPN" AttributeNamespace="http://schemas.xmlsoap.org/claims"><saml:AttributeValue>${upn}</saml:AttributeValue></saml:Attribute><saml:Attribute AttributeName="ImmutableID" AttributeNamespace="http://schemas.microsoft.com/LiveID/Federation/2008/05"><saml:AttributeValue>${immutableId}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement><saml:AuthenticationStatement AuthenticationInstant="${iso(now)}" AuthenticationMethod="urn:oasis:names:tc:SAML:1.0:am:password">${subject}</saml:AuthenticationStatement></saml:Assertion>`;
    signatureAfter = "</saml:AuthenticationStatement>";
  } else {
    unsigned = `<Assertion xmlns="${SAML2_NS}" ID="${id}" IssueInstant="${iso(now)}" Version="2.0"><Issuer>${escapeXml(input.issuer)}</Issuer><Subject><NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">${immutableId}</NameID><SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData NotOnOrAfter="${notOnOrAfter}"></SubjectConfirmationData></SubjectConfirmation></Subject><Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><AudienceRestriction><Audience>${audience}</Audience></AudienceRestriction></Conditions><AttributeStatement><Attribute Name="UPN"><AttributeValue>${upn}</AttributeValue></Attribute><Attribute Name="ImmutableID"><AttributeValue>${immutableId}</AttributeValue></Attribute></AttributeStatement><AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${id}"><AuthnContext><AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</AuthnContextClassRef></AuthnContext></AuthnStatement></Assertion>`;
    // SAML 2.0 schema: the signature follows the Issuer.
    signatureAfter = "</Issuer>";
  }
  const digest = createHash("sha256").update(unsigned, "utf8").digest("base64");
  const signedInfoBody = `<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"></ds:SignatureMethod><ds:Reference URI="#${id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"></ds:Transform><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"></ds:DigestMethod><ds:DigestValue>${digest}</ds:DigestValue></ds:Reference>`;
  const signature = sign("sha256", Buffer.from(standaloneSignedInfo(signedInfoBody)), key.keyPem).toString(
    "base64",
  );
  const signatureXml = `<ds:Signature xmlns:ds="${DS_NS}"><ds:SignedInfo>${signedInfoBody}</ds:SignedInfo><ds:SignatureValue>${signature}</ds:SignatureValue><KeyInfo xmlns="${DS_NS}"><X509Data><X509Certificate>${key.der.toString("base64")}</X509Certificate></X509Data></KeyInfo></ds:Signature>`;
  const at = unsigned.indexOf(signatureAfter) + signatureAfter.length;
  return { xml: unsigned.slice(0, at) + signatureXml + unsigned.slice(at), id };
}

// SignedInfo as exclusive canonicalisation renders it on its own: with the ds namespace declared on it.
const standaloneSignedInfo = (body: string) => `<ds:SignedInfo xmlns:ds="${DS_NS}">${body}</ds:SignedInfo>`;

export type AssertionCheck =
  | {
      ok: true;
      version: SamlVersion;
      id: string;
      issuer: string;
      audience: string;
      upn: string;
      notBefore: number;
      notOnOrAfter: number;
    }
  | { ok: false; reason: "malformed" | "signature"; detail: string };

/**
 * Parses an assertion and checks its signature against the AD FS certificate (never the KeyInfo the
 * assertion brings along). Times and audience are left to the caller, which knows the answer codes.
 */
export function checkSignedAssertion(xml: string, certPem: string): AssertionCheck {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (error) {
    return {
      ok: false,
      reason: "malformed",
      detail: `the assertion is not well-formed XML (${(error as Error).message})`,
    };
  }
  const version: SamlVersion | undefined =
    root.local !== "Assertion"
      ? undefined
      : root.ns === SAML1_NS
        ? "1.1"
        : root.ns === SAML2_NS
          ? "2.0"
          : undefined;
  if (!version)
    return { ok: false, reason: "malformed", detail: "the token is not a SAML 1.1 or 2.0 assertion" };

  const signatures =
    /<ds:Signature xmlns:ds="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#">[\s\S]*?<\/ds:Signature>/.exec(xml);
  if (!signatures) return { ok: false, reason: "signature", detail: "the assertion is not signed" };
  const unsigned = xml.slice(0, signatures.index) + xml.slice(signatures.index + signatures[0].length);
  const signedInfo = /<ds:SignedInfo>([\s\S]*?)<\/ds:SignedInfo>/.exec(signatures[0]);
  const signatureValue = /<ds:SignatureValue>([^<]*)<\/ds:SignatureValue>/.exec(signatures[0])?.[1];
  const digestValue = signedInfo
    ? /<ds:DigestValue>([^<]*)<\/ds:DigestValue>/.exec(signedInfo[1]!)?.[1]
    : undefined;
  const reference = signedInfo ? /<ds:Reference URI="#([^"]*)">/.exec(signedInfo[1]!)?.[1] : undefined;
  if (!signedInfo || !signatureValue || !digestValue || !reference) {
    return { ok: false, reason: "signature", detail: "the signature is incomplete" };
  }
  const id = version === "1.1" ? root.attributes.AssertionID : root.attributes.ID;
  if (!id || reference !== id)
    return { ok: false, reason: "signature", detail: "the signature does not reference the assertion" };
  const digest = createHash("sha256").update(unsigned, "utf8").digest("base64");
  if (digest !== digestValue) {
    return {
      ok: false,
      reason: "signature",
      detail: "the assertion's digest does not match: its bytes were changed",
    };
  }
  const valid = verify(
    "sha256",
    Buffer.from(standaloneSignedInfo(signedInfo[1]!)),
    createPublicKey(certPem),
    Buffer.from(signatureValue, "base64"),
  );
  if (!valid) return { ok: false, reason: "signature", detail: "the signature was not made by this AD FS" };

  const ns = root.ns;
  const conditions = xmlChild(root, ns, "Conditions");
  const audience = xmlDescendants(conditions, ns, "Audience")[0]?.text ?? "";
  const upn =
    xmlDescendants(root, ns, "Attribute").find(
      (a) => (version === "1.1" ? a.attributes.AttributeName : a.attributes.Name) === "UPN",
    )?.children[0]?.text ?? "";
  const issuer =
    version === "1.1" ? (root.attributes.Issuer ?? "") : (xmlChild(root, ns, "Issuer")?.text ?? "");
  return {
    ok: true,
    version,
    id,
    issuer,
    audience,
    upn,
    notBefore: Date.parse(conditions?.attributes.NotBefore ?? ""),
    notOnOrAfter: Date.parse(conditions?.attributes.NotOnOrAfter ?? ""),
  };
}
