import { describe, expect, it } from "vitest";
import {
  CLOUDS,
  type ExplainOutlookAuthFailureOptions,
  explainOutlookAuthFailure,
  M365MailError,
  type OutlookProtocol,
  readJwtClaims,
} from "../src/index.js";

// Unsigned JWT-shaped tokens: the helper only reads claims, it never trusts them.
function jwt(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}
const exp = Math.floor(Date.now() / 1000) + 3600;
const PERMISSION: Record<OutlookProtocol, string> = {
  imap: "IMAP.AccessAsUser.All",
  pop3: "POP.AccessAsUser.All",
  smtp: "SMTP.Send",
};
const outlook = (extra: Record<string, unknown> = {}) =>
  jwt({
    aud: "https://outlook.office.com",
    scp: "IMAP.AccessAsUser.All POP.AccessAsUser.All SMTP.Send",
    upn: "support@contoso.com",
    exp,
    ...extra,
  });
const explain = (
  protocol: OutlookProtocol,
  token: string,
  more: Partial<ExplainOutlookAuthFailureOptions> = {},
) => explainOutlookAuthFailure({ protocol, token, username: "support@contoso.com", ...more });

describe("explainOutlookAuthFailure", () => {
  for (const protocol of ["imap", "pop3", "smtp"] as const) {
    describe(protocol, () => {
      it("calls a Graph token WRONG_SCOPE and names the prefixed scope", () => {
        const error = explain(protocol, jwt({ aud: "https://graph.microsoft.com", scp: "Mail.Read", exp }), {
          serverCode: "5.7.3",
          serverText: "refused by the server",
          cause: new Error("server said no"),
        });
        expect(error).toBeInstanceOf(M365MailError);
        expect(error.code).toBe("WRONG_SCOPE");
        expect(error.message).toContain("Microsoft Graph");
        expect(error.message).toContain("refused by the server");
        expect(error.hint).toContain(`https://outlook.office.com/${PERMISSION[protocol]}`);
        expect(error.source).toBe(protocol);
        expect(error.serverCode).toBe("5.7.3");
        expect((error.cause as Error).message).toBe("server said no");
      });

      it("reports a token without the protocol's permission, pointing at API permissions and admin consent", () => {
        const error = explain(protocol, outlook({ scp: "User.Read" }));
        expect(error.code).toBe("CONSENT_REQUIRED");
        expect(error.message).toContain("(it has: User.Read)");
        expect(error.hint).toMatch(
          new RegExp(
            `API permissions .*${PERMISSION[protocol].replace(/\./g, "\\.")}, then Grant admin consent`,
          ),
        );
      });

      it("accepts the permission as a full URI of another cloud's Outlook resource", () => {
        const token = jwt({
          aud: "https://outlook.office365.us",
          scp: `https://outlook.office365.us/${PERMISSION[protocol]}`,
          upn: "a@contoso.us",
          exp,
        });
        const error = explain(protocol, token, { username: "a@contoso.us", cloud: CLOUDS.usgovhigh });
        expect(["PROTOCOL_DISABLED", "AUTH_FAILED"]).toContain(error.code);
        expect(error.message).toContain(`has ${PERMISSION[protocol]}`);
      });

      it("points a delegate refused on a shared mailbox at the mailbox's Delegation page", () => {
        const error = explain(protocol, outlook(), { mailbox: "shared@contoso.com" });
        expect(error.code).toBe("ACCESS_DENIED");
        expect(error.message).toContain("user=shared@contoso.com with support@contoso.com's token");
        expect(error.hint).toContain(
          "Exchange admin center → Recipients → Mailboxes → shared@contoso.com → Delegation",
        );
        expect(error.hint).toContain("add support@contoso.com");
        expect(error.hint).toContain(protocol === "smtp" ? "Send as" : "Full Access");
      });

      it("says when the token is someone else's although no shared mailbox was asked for", () => {
        const error = explain(protocol, outlook({ upn: "alice@contoso.com" }));
        expect(error.code).toBe("AUTH_FAILED");
        expect(error.message).toContain("belongs to alice@contoso.com, not to support@contoso.com");
      });

      it("calls an expired token AUTH_FAILED and retryable", () => {
        const error = explain(protocol, outlook({ exp: 1_000 }));
        expect(error).toMatchObject({ code: "AUTH_FAILED", retryable: true });
        expect(error.message).toContain("expired");
      });

      it("lists the possibilities when the token is not a JWT, without printing it", () => {
        const error = explain(protocol, "opaque-token-value");
        expect(error.code).toBe("AUTH_FAILED");
        expect(error.message).toMatch(/not a JWT.*Possible causes/);
        expect(JSON.stringify(error.toJSON())).not.toContain("opaque-token-value");
        expect(explain(protocol, undefined as unknown as string).code).toBe("AUTH_FAILED");
      });
    });
  }

  it("blames Manage email apps for a right token refused over IMAP or POP3", () => {
    const imap = explain("imap", outlook({ upn: "noimap@contoso.com" }), { username: "noimap@contoso.com" });
    expect(imap.code).toBe("PROTOCOL_DISABLED");
    expect(imap.hint).toBe(
      "Exchange admin center → Recipients → Mailboxes → noimap@contoso.com → Manage email apps → IMAP: turn it on.",
    );
    const pop3 = explain("pop3", outlook());
    expect(pop3.code).toBe("PROTOCOL_DISABLED");
    expect(pop3.hint).toContain("support@contoso.com → Manage email apps → POP3 on");
    expect(pop3.message).toContain("other possible causes");
  });

  it("does not call a refused SMTP sign-in PROTOCOL_DISABLED: Exchange says 5.7.139 for that", () => {
    const error = explain("smtp", outlook());
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.hint).toContain("Manage email apps → Authenticated SMTP");
    expect(error.hint).toContain("Grant admin consent");
  });

  it("recognises Exchange's and Graph's app ids as audiences", () => {
    expect(explain("imap", outlook({ aud: "00000002-0000-0ff1-ce00-000000000000" })).code).toBe(
      "PROTOCOL_DISABLED",
    );
    const graph = explain("imap", jwt({ aud: "00000003-0000-0000-c000-000000000000", exp }));
    expect(graph.code).toBe("WRONG_SCOPE");
    expect(graph.message).toContain("Microsoft Graph");
  });

  it("names an unknown audience as it is", () => {
    const error = explain("pop3", jwt({ aud: "api://something-else", exp }));
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.message).toContain('"api://something-else"');
  });

  it("uses the cloud's own Outlook resource in the hint", () => {
    const error = explain("imap", jwt({ aud: "https://graph.microsoft.us", exp }), {
      cloud: CLOUDS.usgovhigh,
    });
    expect(error.hint).toContain("https://outlook.office365.us/IMAP.AccessAsUser.All");
  });

  it("takes the token's claims instead of the token", () => {
    const claims = readJwtClaims(outlook({ scp: "SMTP.Send" }));
    expect(explain("imap", "", { token: claims }).code).toBe("CONSENT_REQUIRED");
  });

  it("takes the source from the options", () => {
    expect(explain("smtp", outlook(), { source: "doctor" }).source).toBe("doctor");
  });
});

describe("explainOutlookAuthFailure: Exchange's throttling answers", () => {
  // As IMAP clients log them: imap_tools #135, imapsync #198, email-oauth2-proxy #191.
  it("calls a throttled sign-in THROTTLED (retryable, with the back-off), not a setting to change", () => {
    for (const protocol of ["imap", "pop3"] as const) {
      const error = explain(protocol, outlook(), {
        serverText: "Request is throttled. Suggested Backoff Time: 89117 milliseconds",
      });
      expect(error.code).toBe("THROTTLED");
      expect(error.retryable).toBe(true);
      expect(error.retryAfterSeconds).toBe(90);
      expect(error.message).toContain("throttling support@contoso.com for about 90 s");
      expect(error.hint).toMatch(/Wait for about 90 s/);
      expect(error.hint).not.toMatch(/admin center|Grant admin consent/);
    }
  });

  it("calls too many sessions THROTTLED without a back-off", () => {
    const error = explain("imap", outlook(), { serverText: "User is authenticated but not connected." });
    expect(error.code).toBe("THROTTLED");
    expect(error.retryAfterSeconds).toBeUndefined();
    expect(error.hint).toMatch(/Wait a few minutes/);
  });

  it("still explains a plain refusal from the token", () => {
    expect(explain("imap", outlook(), { serverText: "AUTHENTICATE failed." }).code).toBe("PROTOCOL_DISABLED");
  });
});
