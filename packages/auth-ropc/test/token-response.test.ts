import { M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { AADSTS_ERRORS } from "../src/aadsts.js";
import { oauthErrorOf, parseRetryAfter, readTokenResponse } from "../src/token-response.js";

const ctx = { username: "support@contoso.com", tenantId: "tenant-guid", clientId: "client-guid" };
const where = "POST https://login.example/tenant/oauth2/v2.0/token";

function fail(status: number, text: string, headers: Record<string, string> = {}): M365MailError {
  try {
    readTokenResponse({ status, headers, text }, where, ctx);
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    return error as M365MailError;
  }
  throw new Error("readTokenResponse did not throw");
}

const aadstsBody = (n: number, error = "invalid_grant") =>
  JSON.stringify({
    error,
    error_description: `AADSTS${n}: something happened.\r\nTrace ID: 1\r\nCorrelation ID: 2`,
    error_codes: [n],
  });

describe("readTokenResponse", () => {
  it("returns the body of a 200 with an access token", () => {
    const body = readTokenResponse(
      {
        status: 200,
        headers: { "content-type": "application/json" },
        text: '{"access_token":"abc","expires_in":3600}',
      },
      where,
      ctx,
    );
    expect(body.access_token).toBe("abc");
  });

  const cases: Array<[number, string, RegExp]> = [
    [7000218, "PUBLIC_CLIENT_DISABLED", /Allow public client flows/],
    [65001, "CONSENT_REQUIRED", /Grant admin consent/],
    [50105, "USER_NOT_ASSIGNED", /Users and groups.*support@contoso\.com.*Assignment required/],
    [50076, "MFA_REQUIRED", /MFA/],
    [50079, "MFA_REQUIRED", /MFA/],
    [50126, "AUTH_FAILED", /federated.*Home Realm Discovery/],
    [50053, "ACCOUNT_LOCKED", /locked/],
    [50057, "ACCOUNT_DISABLED", /Account enabled/],
    [50055, "PASSWORD_EXPIRED", /never to expire/],
    [700016, "APP_NOT_FOUND", /Application \(client\) ID/],
    [90002, "TENANT_NOT_FOUND", /cloud/],
    [50034, "USER_NOT_FOUND", /UPN/],
    [50158, "POLICY_BLOCKED", /Conditional Access/],
    [53003, "POLICY_BLOCKED", /Conditional Access/],
    [530035, "POLICY_BLOCKED", /Security Defaults/],
    [700082, "REFRESH_EXPIRED", /password again/],
    [70043, "REFRESH_EXPIRED", /password again/],
    [50173, "REFRESH_EXPIRED", /password again/],
    [50196, "THROTTLED", /cache/],
    [9001023, "CONFIG_INVALID", /tenant\) ID/],
  ];
  it.each(cases)("maps AADSTS%i to %s with a hint", (n, code, hint) => {
    const error = fail(400, aadstsBody(n));
    expect(error.code).toBe(code);
    expect(error.serverCode).toBe(`AADSTS${n}`);
    expect(error.hint).toMatch(hint);
    expect(error.source).toBe("auth-ropc");
    expect(error.message).toContain(`AADSTS${n}`);
    expect(oauthErrorOf(error)).toBe("invalid_grant");
  });

  it("covers every code of the m365-facts table", () => {
    for (const n of [
      50126, 50076, 50079, 65001, 7000218, 50105, 50034, 50053, 50055, 50057, 700016, 90002, 50158, 53003,
      530035, 700082, 70043, 50173, 50196, 9001023,
    ]) {
      expect(AADSTS_ERRORS[n], `AADSTS${n}`).toBeDefined();
    }
  });

  it("only MFA/consent/etc. are not retryable; 50196 is", () => {
    expect(fail(400, aadstsBody(50076)).retryable).toBe(false);
    expect(fail(400, aadstsBody(65001, "invalid_grant")).retryable).toBe(false);
    expect(fail(400, aadstsBody(50196, "invalid_request")).retryable).toBe(true);
  });

  it("falls back on the OAuth error value when the number is unknown", () => {
    const error = fail(
      400,
      JSON.stringify({ error: "invalid_client", error_description: "AADSTS1234567: new thing" }),
    );
    expect(error.code).toBe("PUBLIC_CLIENT_DISABLED");
    const unknown = fail(
      400,
      JSON.stringify({ error: "weird_error", error_description: "AADSTS1234567: new thing" }),
    );
    expect(unknown.code).toBe("AUTH_FAILED");
    expect(unknown.message).toContain("new thing");
  });

  // Regression (audit, bug 1): Entra ID's refusals of an AD FS assertion told the user to check the
  // username and password, which AD FS had just accepted.
  const samlCtx = { ...ctx, username: "ops@adatum.com", grant: "saml-bearer" as const };
  const failSaml = (n: number | undefined): M365MailError => {
    const text =
      n === undefined
        ? JSON.stringify({ error: "invalid_grant", error_description: "AADSTS1234567: new thing" })
        : aadstsBody(n);
    try {
      readTokenResponse({ status: 400, headers: {}, text }, where, samlCtx);
    } catch (error) {
      return error as M365MailError;
    }
    throw new Error("readTokenResponse did not throw");
  };
  it.each<[number, RegExp[]]>([
    [50006, [/token-signing certificate/, /Get-MgDomainFederationConfiguration/]],
    [50008, [/token-signing certificate/, /claim/, /Microsoft Office 365 Identity Platform/]],
    [50013, [/clock/i, /NTP/, /AD FS/]],
    [50107, [/IssuerUri/, /Federation Service identifier/]],
  ])(
    "AADSTS%i (an AD FS assertion refused by Entra ID) is CONFIG_INVALID naming what to change",
    (n, hints) => {
      for (const [error, domain] of [
        [failSaml(n), "adatum.com"],
        [fail(400, aadstsBody(n)), "contoso.com"],
      ] as const) {
        expect(error.code).toBe("CONFIG_INVALID");
        if (n === 50006 || n === 50107) expect(error.hint).toContain(domain);
        expect(error.serverCode).toBe(`AADSTS${n}`);
        expect(error.retryable).toBe(false);
        for (const hint of hints) expect(error.hint).toMatch(hint);
        expect(error.hint).not.toMatch(/check the username and password/i);
        expect(error.message).not.toMatch(/username or password/);
      }
    },
  );

  it("an unknown invalid_grant of the SAML bearer grant names AD FS and the federation trust, not the password", () => {
    const error = failSaml(undefined);
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.hint).not.toMatch(/check the username and password/i);
    expect(error.hint).toMatch(/accepted by AD FS/);
    expect(error.hint).toMatch(/Get-MgDomainFederationConfiguration/);
    // The password grant keeps its hint.
    expect(
      fail(400, JSON.stringify({ error: "invalid_grant", error_description: "AADSTS1234567: x" })).hint,
    ).toMatch(/Check the username and password/);
  });

  it("turns 429 into THROTTLED with Retry-After", () => {
    const error = fail(429, "{}", { "retry-after": "7" });
    expect(error.code).toBe("THROTTLED");
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(7);
  });

  it("turns a 503 HTML page into a retryable SERVER_ERROR without echoing the page", () => {
    const error = fail(
      503,
      "<!DOCTYPE html><html><body>password=hunter22 Service Unavailable</body></html>",
      {
        "content-type": "text/html",
      },
    );
    expect(error.code).toBe("SERVER_ERROR");
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/503 with an HTML page/);
    expect(error.message).not.toContain("hunter22");
  });

  it("turns a malformed 200 and a 200 without token into retryable INVALID_RESPONSE", () => {
    const malformed = fail(200, '{"access_token":"eyJhbGciOi', { "content-type": "application/json" });
    expect(malformed.code).toBe("INVALID_RESPONSE");
    expect(malformed.retryable).toBe(true);
    expect(malformed.message).not.toContain("eyJ");
    const empty = fail(200, '{"token_type":"Bearer","access_token":""}', {
      "content-type": "application/json",
    });
    expect(empty.code).toBe("INVALID_RESPONSE");
    expect(empty.message).toMatch(/without an access token/);
  });

  it("reads Retry-After as seconds or as a date", () => {
    expect(parseRetryAfter("3")).toBe(3);
    expect(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())).toBeGreaterThanOrEqual(8);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});
