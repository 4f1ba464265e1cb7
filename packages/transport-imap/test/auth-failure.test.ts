import { CLOUDS, M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { explainAuthFailure } from "../src/auth-failure.js";

// Unsigned JWT-shaped tokens: explainAuthFailure only reads claims, it never trusts them.
function jwt(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}
const exp = Math.floor(Date.now() / 1000) + 3600;
const outlook = (extra: Record<string, unknown> = {}) =>
  jwt({
    aud: "https://outlook.office.com",
    scp: "IMAP.AccessAsUser.All SMTP.Send",
    upn: "support@contoso.com",
    exp,
    ...extra,
  });
const explain = (token: string, user = "support@contoso.com") =>
  explainAuthFailure({
    token,
    user,
    signedInUser: "support@contoso.com",
    cloud: CLOUDS.global,
    serverText: "AUTHENTICATE failed.",
  });

describe("explainAuthFailure", () => {
  it("calls a Graph-audience token WRONG_SCOPE and names the prefixed scope", () => {
    const error = explain(
      jwt({
        aud: "https://graph.microsoft.com",
        scp: "IMAP.AccessAsUser.All",
        upn: "support@contoso.com",
        exp,
      }),
    );
    expect(error).toBeInstanceOf(M365MailError);
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.message).toContain("Microsoft Graph");
    expect(error.hint).toContain("https://outlook.office.com/IMAP.AccessAsUser.All");
    expect(error.source).toBe("imap");
    expect(error.serverCode).toBe("AUTHENTICATE failed.");
  });

  it("recognises Graph by its app id audience too", () => {
    expect(explain(jwt({ aud: "00000003-0000-0000-c000-000000000000", exp })).code).toBe("WRONG_SCOPE");
  });

  it("uses the cloud's own resource in the hint", () => {
    const error = explainAuthFailure({
      token: jwt({ aud: "https://graph.microsoft.us", exp }),
      user: "a@contoso.us",
      signedInUser: "a@contoso.us",
      cloud: CLOUDS.usgovhigh,
    });
    expect(error.hint).toContain("https://outlook.office365.us/IMAP.AccessAsUser.All");
  });

  it("reports a missing IMAP permission as CONSENT_REQUIRED with the API permissions steps", () => {
    const error = explain(outlook({ scp: "SMTP.Send POP.AccessAsUser.All" }));
    expect(error.code).toBe("CONSENT_REQUIRED");
    expect(error.message).toContain("SMTP.Send POP.AccessAsUser.All");
    expect(error.hint).toMatch(/API permissions.*IMAP\.AccessAsUser\.All.*Grant admin consent/);
  });

  it("blames the mailbox's Manage email apps switch when the token itself is right", () => {
    const error = explain(outlook({ upn: "noimap@contoso.com" }), "noimap@contoso.com");
    expect(error.code).toBe("PROTOCOL_DISABLED");
    expect(error.hint).toBe(
      "Exchange admin center → Recipients → Mailboxes → noimap@contoso.com → Manage email apps → IMAP: turn it on.",
    );
    expect(error.message).toContain("other possible causes");
  });

  it("accepts Exchange's app id as audience", () => {
    expect(explain(outlook({ aud: "00000002-0000-0ff1-ce00-000000000000" })).code).toBe("PROTOCOL_DISABLED");
  });

  it("points a delegate refused on a shared mailbox at Full Access and the mailbox's IMAP switch", () => {
    const error = explain(outlook(), "shared@contoso.com");
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.hint).toContain("shared@contoso.com → Delegation");
    expect(error.hint).toContain("Manage email apps → IMAP");
  });

  it("lists every possibility when the token is not a JWT", () => {
    const error = explain("opaque-token-value");
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.message).toMatch(/not a JWT.*Possible causes/);
    expect(error.message).not.toContain("opaque-token-value");
  });

  it("never puts the token into the message", () => {
    const token = outlook({ upn: "noimap@contoso.com" });
    const error = explain(token, "noimap@contoso.com");
    expect(JSON.stringify(error.toJSON())).not.toContain(token);
  });
});
