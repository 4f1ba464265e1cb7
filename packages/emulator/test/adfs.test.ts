import { execFile } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { request } from "node:https";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildSignedAssertion } from "../src/adfs/saml-assertion.js";
import {
  DEMO_CLIENT_ID,
  DEMO_PASSWORD,
  defaultDirectory,
  validateDirectory,
} from "../src/default-directory.js";
import { startTestEmulator, type TestEmulator } from "../src/test-emulator.js";

const run = promisify(execFile);
const FEDERATED = "ops@adatum.com";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator({ prefix: "emulator-adfs-", parts: [] });
});
afterAll(() => emu?.stop());
beforeEach(() => {
  emu.admin.resetCounts();
  emu.admin.updateAdfsSettings({
    wsTrust13: true,
    wsTrust2005: true,
    mex: true,
    reachable: true,
    assertionLifetimeSeconds: 3600,
  });
  emu.admin.updateApp(DEMO_CLIENT_ID, { allowCloudPasswordValidation: false });
});

interface Answer {
  status: number;
  type: string;
  text: string;
}

function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: init.method ?? "GET", headers: init.headers, ca: emu.caPem },
      (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), text }),
        );
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

const token = (form: Record<string, string>) =>
  send(`${emu.authority}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      client_id: DEMO_CLIENT_ID,
      scope: "https://graph.microsoft.com/.default offline_access",
      ...form,
    }).toString(),
  });

const ACTION13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue";
const ACTION2005 = "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue";

/**
 * A WS-Trust 1.3 RST written by hand, the way a PowerShell script or a Java client would send it:
 * not produced by any m365-mail code (double quotes, other prefixes, line breaks, its own ids).
 */
function handWrittenRst13(
  endpoint: string,
  username: string,
  password: string,
  appliesTo = "urn:federation:MicrosoftOnline",
): string {
  const created = new Date().toISOString();
  const expires = new Date(Date.now() + 5 * 60_000).toISOString();
  return `<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
               xmlns:addr="http://www.w3.org/2005/08/addressing"
               xmlns:util="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
  <soap:Header>
    <addr:Action soap:mustUnderstand="1">http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue</addr:Action>
    <addr:MessageID>urn:uuid:${randomUUID()}</addr:MessageID>
    <addr:ReplyTo><addr:Address>http://www.w3.org/2005/08/addressing/anonymous</addr:Address></addr:ReplyTo>
    <addr:To soap:mustUnderstand="1">${endpoint}</addr:To>
    <sec:Security soap:mustUnderstand="1" xmlns:sec="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <util:Timestamp util:Id="ts-1">
        <util:Created>${created}</util:Created>
        <util:Expires>${expires}</util:Expires>
      </util:Timestamp>
      <sec:UsernameToken util:Id="user-1">
        <sec:Username>${username}</sec:Username>
        <sec:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">${password}</sec:Password>
      </sec:UsernameToken>
    </sec:Security>
  </soap:Header>
  <soap:Body>
    <trust:RequestSecurityToken xmlns:trust="http://docs.oasis-open.org/ws-sx/ws-trust/200512">
      <policy:AppliesTo xmlns:policy="http://schemas.xmlsoap.org/ws/2004/09/policy">
        <addr:EndpointReference>
          <addr:Address>${appliesTo}</addr:Address>
        </addr:EndpointReference>
      </policy:AppliesTo>
      <trust:KeyType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer</trust:KeyType>
      <trust:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</trust:RequestType>
    </trust:RequestSecurityToken>
  </soap:Body>
</soap:Envelope>`;
}

const endpoint13 = () => `${emu.adfsOrigin}/adfs/services/trust/13/usernamemixed`;
const soapHeaders = (action: string) => ({
  "content-type": "application/soap+xml; charset=utf-8",
  soapaction: action,
});

/** The assertion between the RequestedSecurityToken tags, bytes untouched. */
const cutAssertion = (rstr: string) =>
  /<(?:\w+:)?RequestedSecurityToken>([\s\S]*)<\/(?:\w+:)?RequestedSecurityToken>/.exec(rstr)?.[1] ?? "";

describe("directory validation", () => {
  it("names a federated domain the tenant does not own and a wrong SAML version", () => {
    const directory = defaultDirectory();
    directory.tenants[0]!.federatedDomains = [{ domain: "elsewhere.com", samlVersion: "3.0" as "2.0" }];
    expect(() => validateDirectory(directory)).toThrow(
      /tenants\[0\]\.federatedDomains\[0\]\.domain elsewhere\.com is not one of the tenant's domains.*tenants\[0\]\.federatedDomains\[0\]\.samlVersion must be "1\.1" or "2\.0"/,
    );
  });
});

describe("user-realm discovery", () => {
  it("answers Federated with the AD FS metadata for a federated domain, Managed and Unknown otherwise", async () => {
    const federated = JSON.parse(
      (await send(`${emu.authorityHost}/common/userrealm/${FEDERATED}?api-version=1.0`)).text,
    );
    expect(federated).toMatchObject({
      ver: "1.0",
      account_type: "Federated",
      domain_name: "adatum.com",
      federation_protocol: "WSTrust",
      federation_metadata_url: `${emu.adfsOrigin}/adfs/services/trust/mex`,
      federation_active_auth_url: `${emu.adfsOrigin}/adfs/services/trust/2005/usernamemixed`,
      cloud_audience_urn: "urn:federation:MicrosoftOnline",
    });
    const managed = JSON.parse(
      (await send(`${emu.authorityHost}/common/userrealm/support@contoso.com?api-version=1.0`)).text,
    );
    expect(managed).toMatchObject({ account_type: "Managed", domain_name: "contoso.com" });
    expect(managed.federation_metadata_url).toBeUndefined();
    const unknown = JSON.parse(
      (await send(`${emu.authorityHost}/common/userrealm/someone@example.org?api-version=1.0`)).text,
    );
    expect(unknown.account_type).toBe("Unknown");
    expect(emu.admin.counts()["entra.userrealm"]).toBe(3);
    expect(emu.admin.counts()["adfs.requests"]).toBeUndefined();
  });
});

describe("AD FS metadata (MEX)", () => {
  it("lists both usernamemixed ports among others, and drops the 1.3 one when it is switched off", async () => {
    const mex = await send(`${emu.adfsOrigin}/adfs/services/trust/mex`);
    expect(mex.status).toBe(200);
    expect(mex.type).toContain("application/soap+xml");
    expect(mex.text).toContain(
      `<wsa10:Address>${emu.adfsOrigin}/adfs/services/trust/13/usernamemixed</wsa10:Address>`,
    );
    expect(mex.text).toContain(
      `<wsa10:Address>${emu.adfsOrigin}/adfs/services/trust/2005/usernamemixed</wsa10:Address>`,
    );
    expect(mex.text).toContain("/13/windowstransport");
    emu.admin.updateAdfsSettings({ wsTrust13: false });
    const without = (await send(`${emu.adfsOrigin}/adfs/services/trust/mex`)).text;
    expect(without).not.toContain("/13/usernamemixed");
    expect(without).toContain("/2005/usernamemixed");
    // A switched-off endpoint is gone, as on AD FS.
    const post = await send(endpoint13(), {
      method: "POST",
      headers: soapHeaders(ACTION13),
      body: handWrittenRst13(endpoint13(), FEDERATED, DEMO_PASSWORD),
    });
    expect(post.status).toBe(404);
  });

  it("answers 404 when the metadata endpoint is off, and drops connections when AD FS is unreachable", async () => {
    emu.admin.updateAdfsSettings({ mex: false });
    expect((await send(`${emu.adfsOrigin}/adfs/services/trust/mex`)).status).toBe(404);
    emu.admin.updateAdfsSettings({ reachable: false });
    await expect(send(`${emu.adfsOrigin}/adfs/services/trust/mex`)).rejects.toThrow();
  });
});

describe("an independent client (hand-written SOAP, posted with curl)", () => {
  it("gets a well-formed RSTR whose assertion the token endpoint accepts, in base64 and in base64url", async () => {
    const { stdout } = await run("curl", [
      "--silent",
      "--show-error",
      "--cacert",
      emu.caPath,
      "-H",
      "Content-Type: application/soap+xml; charset=utf-8",
      "-H",
      `SOAPAction: ${ACTION13}`,
      "--data-binary",
      handWrittenRst13(endpoint13(), FEDERATED, DEMO_PASSWORD),
      "-w",
      "\n%{http_code}",
      endpoint13(),
    ]);
    const status = stdout.slice(stdout.lastIndexOf("\n") + 1);
    const rstr = stdout.slice(0, stdout.lastIndexOf("\n"));
    expect(status).toBe("200");
    expect(rstr).toMatch(/^<s:Envelope xmlns:s="http:\/\/www\.w3\.org\/2003\/05\/soap-envelope"/);
    expect(rstr).toContain(
      '<a:Action s:mustUnderstand="1">http://docs.oasis-open.org/ws-sx/ws-trust/200512/RSTRC/IssueFinal</a:Action>',
    );
    expect(rstr).toMatch(
      /<t:RequestSecurityTokenResponseCollection xmlns:t="http:\/\/docs\.oasis-open\.org\/ws-sx\/ws-trust\/200512"><t:RequestSecurityTokenResponse>/,
    );
    expect(rstr).toContain("<t:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</t:TokenType>");
    expect(rstr).toContain("<t:KeyType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer</t:KeyType>");
    const assertion = cutAssertion(rstr);
    expect(assertion).toMatch(
      /^<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:1\.0:assertion" AssertionID="_[0-9a-f-]+"/,
    );
    expect(assertion).toContain(`<saml:AttributeValue>${FEDERATED}</saml:AttributeValue>`);
    expect(assertion).toContain("<saml:Audience>urn:federation:MicrosoftOnline</saml:Audience>");
    expect(assertion).toMatch(/<ds:SignatureValue>[A-Za-z0-9+/=]{300,}<\/ds:SignatureValue>/);

    // MSAL.NET sends standard base64, MSAL Python base64url without padding: both are accepted.
    for (const encoded of [
      Buffer.from(assertion).toString("base64"),
      Buffer.from(assertion).toString("base64url"),
    ]) {
      const answer = await token({
        grant_type: "urn:ietf:params:oauth:grant-type:saml1_1-bearer",
        assertion: encoded,
      });
      expect(answer.status, answer.text).toBe(200);
      const body = JSON.parse(answer.text);
      const claims = JSON.parse(Buffer.from(body.access_token.split(".")[1], "base64url").toString());
      expect(claims.upn).toBe(FEDERATED);
      expect(claims.aud).toBe("https://graph.microsoft.com");
      expect(body.refresh_token).toMatch(/^0\.A/);
    }
  });
});

describe("WS-Trust endpoint checks and faults", () => {
  const post = (path: string, action: string, body: string, type = "application/soap+xml; charset=utf-8") =>
    send(`${emu.adfsOrigin}/adfs/services/trust/${path}/usernamemixed`, {
      method: "POST",
      headers: { "content-type": type, soapaction: action },
      body,
    });
  const fault = (answer: Answer) => ({
    status: answer.status,
    subcode: /<s:Subcode><s:Value[^>]*>([^<]*)</.exec(answer.text)?.[1],
    reason: /<s:Text[^>]*>([^<]*)</.exec(answer.text)?.[1],
  });

  it("refuses a SOAPAction or namespace that does not fit the endpoint (WCF's ContractFilter mismatch)", async () => {
    const rst = handWrittenRst13(endpoint13(), FEDERATED, DEMO_PASSWORD);
    expect(fault(await post("13", ACTION2005, rst))).toMatchObject({
      status: 500,
      subcode: "a:ActionNotSupported",
    });
    // A 1.3 message on the 2005 endpoint, even with the 2005 SOAPAction: its Action and namespace are 1.3.
    expect(fault(await post("2005", ACTION2005, rst))).toMatchObject({
      status: 500,
      subcode: "a:ActionNotSupported",
    });
    expect((await post("13", ACTION13, rst, "text/xml; charset=utf-8")).status).toBe(415);
  });

  it("refuses an unknown relying party, and answers a wrong password with FailedAuthentication (500)", async () => {
    const other = fault(
      await post("13", ACTION13, handWrittenRst13(endpoint13(), FEDERATED, DEMO_PASSWORD, "urn:example:app")),
    );
    expect(other).toMatchObject({ status: 500, subcode: "a:RequestFailed" });
    expect(other.reason).toContain("MSIS7007");
    const wrong = fault(
      await post("13", ACTION13, handWrittenRst13(endpoint13(), FEDERATED, "not-the-password")),
    );
    expect(wrong).toMatchObject({
      status: 500,
      subcode: "a:FailedAuthentication",
      reason: "ID3242: The security token could not be authenticated or authorized.",
    });
    // A cloud-only user is unknown to AD FS.
    const managed = fault(
      await post("13", ACTION13, handWrittenRst13(endpoint13(), "support@contoso.com", DEMO_PASSWORD)),
    );
    expect(managed.subcode).toBe("a:FailedAuthentication");
    const locked = fault(
      await post("13", ACTION13, handWrittenRst13(endpoint13(), "adlocked@adatum.com", DEMO_PASSWORD)),
    );
    expect(locked.reason).toContain("locked out");
    const expired = fault(
      await post("13", ACTION13, handWrittenRst13(endpoint13(), "adexpired@adatum.com", DEMO_PASSWORD)),
    );
    expect(expired.reason).toContain("password for this account has expired");
  });
});

describe("the token endpoint's SAML bearer grants", () => {
  async function assertionFor(user = FEDERATED): Promise<string> {
    const answer = await send(endpoint13(), {
      method: "POST",
      headers: soapHeaders(ACTION13),
      body: handWrittenRst13(endpoint13(), user, DEMO_PASSWORD),
    });
    expect(answer.status).toBe(200);
    return cutAssertion(answer.text);
  }
  const grant11 = (xml: string) =>
    token({
      grant_type: "urn:ietf:params:oauth:grant-type:saml1_1-bearer",
      assertion: Buffer.from(xml).toString("base64"),
    });
  const errorCode = async (answer: Promise<Answer>) => {
    const a = await answer;
    expect(a.status).toBe(400);
    return JSON.parse(a.text).error_codes[0] as number;
  };

  it("refuses an assertion whose bytes were changed (a re-serialised or edited assertion)", async () => {
    const xml = await assertionFor();
    expect(await errorCode(grant11(xml.replace(FEDERATED, "saml2@adatum.com")))).toBe(50006);
    // Namespaces hoisted as a DOM serialiser would: same meaning, other bytes.
    expect(
      await errorCode(
        grant11(
          xml.replace(
            "<saml:Conditions ",
            '<saml:Conditions xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" ',
          ),
        ),
      ),
    ).toBe(50006);
  });

  it("refuses a forged assertion (another key), an expired one, a wrong audience and the wrong grant type", async () => {
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const issuer = `http://${new URL(emu.adfsOrigin).host}/adfs/services/trust`;
    const input = {
      version: "1.1" as const,
      issuer,
      audience: "urn:federation:MicrosoftOnline",
      upn: FEDERATED,
      immutableId: "AAAA",
      lifetimeSeconds: 600,
    };
    const forged = buildSignedAssertion(input, {
      keyPem: stranger.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      certPem: emu.context.tls.certPem,
      der: Buffer.alloc(0),
    });
    expect(await errorCode(grant11(forged.xml))).toBe(50006);
    const own = { keyPem: emu.context.tls.keyPem, certPem: emu.context.tls.certPem, der: Buffer.alloc(0) };
    const expired = buildSignedAssertion({ ...input, now: new Date(Date.now() - 3_600_000) }, own);
    expect(await errorCode(grant11(expired.xml))).toBe(50013);
    const elsewhere = buildSignedAssertion({ ...input, audience: "https://app.example.com" }, own);
    expect(await errorCode(grant11(elsewhere.xml))).toBe(50013);
    const saml2 = await token({
      grant_type: "urn:ietf:params:oauth:grant-type:saml2-bearer",
      assertion: Buffer.from(await assertionFor()).toString("base64url"),
    });
    expect(JSON.parse(saml2.text).error_codes).toEqual([50008]);
    // The control: the same key, audience and time window as AD FS uses are accepted.
    expect((await grant11(buildSignedAssertion(input, own).xml)).status).toBe(200);
  });

  it("issues SAML 2.0 for a user (or domain) set to it, redeemed with the saml2-bearer grant", async () => {
    const xml = await assertionFor("saml2@adatum.com");
    expect(xml).toMatch(/^<Assertion xmlns="urn:oasis:names:tc:SAML:2\.0:assertion" ID="_/);
    const answer = await token({
      grant_type: "urn:ietf:params:oauth:grant-type:saml2-bearer",
      assertion: Buffer.from(xml).toString("base64url"),
    });
    expect(answer.status, answer.text).toBe(200);
  });

  it("refuses a plain password grant for a federated user unless the app allows cloud password validation", async () => {
    const grant = () => token({ grant_type: "password", username: FEDERATED, password: DEMO_PASSWORD });
    expect(await errorCode(grant())).toBe(50126);
    emu.admin.updateApp(DEMO_CLIENT_ID, { allowCloudPasswordValidation: true });
    expect((await grant()).status).toBe(200);
  });
});
