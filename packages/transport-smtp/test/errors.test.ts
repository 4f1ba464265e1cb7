import { isDailySendingLimit, M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import {
  enhancedCode,
  type FailureContext,
  tokenFacts,
  toM365Error,
  toSendError,
} from "../src/smtp-errors.js";

const ctx: FailureContext = {
  mailbox: "support@contoso.com",
  signedInUser: "support@contoso.com",
  host: "smtp.office365.com",
  port: 587,
};

/** Shaped like nodemailer's error for a server reply. */
const reply = (response: string, code = "EAUTH") =>
  Object.assign(new Error(`Invalid login: ${response}`), {
    code,
    response,
    responseCode: Number(response.slice(0, 3)),
  });

const jwt = (claims: Record<string, unknown>) =>
  `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

describe("Exchange replies → typed errors", () => {
  it("reads the enhanced status code", () => {
    expect(enhancedCode("535 5.7.139 Authentication unsuccessful, …")).toBe("5.7.139");
    expect(enhancedCode("250 OK")).toBeUndefined();
  });

  it("5.7.139 Tenant and Mailbox → PROTOCOL_DISABLED with the matching switch", () => {
    const tenant = toM365Error(
      reply(
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [X]",
      ),
      ctx,
    );
    expect(tenant).toMatchObject({
      code: "PROTOCOL_DISABLED",
      serverCode: "5.7.139",
      retryable: false,
      source: "smtp",
    });
    expect(tenant.hint).toMatch(/^Enable SMTP AUTH for the tenant/);
    const mailbox = toM365Error(
      reply(
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [X]",
      ),
      ctx,
    );
    expect(mailbox.hint).toMatch(
      /^Enable SMTP AUTH for the mailbox \(Exchange admin center → Recipients → Mailboxes → support@contoso\.com → Manage email apps/,
    );
  });

  it("535 5.7.3 is explained from the token's claims", () => {
    const r = reply("535 5.7.3 Authentication unsuccessful [X]");
    const graph = toM365Error(r, {
      ...ctx,
      token: tokenFacts(jwt({ aud: "https://graph.microsoft.com", scp: "Mail.Send" })),
    });
    expect(graph).toMatchObject({ code: "WRONG_SCOPE", serverCode: "5.7.3" });
    expect(graph.hint).toContain("https://outlook.office.com/SMTP.Send");
    const noSend = toM365Error(r, {
      ...ctx,
      token: tokenFacts(jwt({ aud: "https://outlook.office.com", scp: "IMAP.AccessAsUser.All" })),
    });
    expect(noSend.code).toBe("CONSENT_REQUIRED");
    expect(noSend.hint).toContain("Grant admin consent");
    const other = toM365Error(r, {
      ...ctx,
      mailbox: "shared@contoso.com",
      token: tokenFacts(
        jwt({ aud: "https://outlook.office.com", scp: "SMTP.Send", upn: "support@contoso.com" }),
      ),
    });
    expect(other.code).toBe("ACCESS_DENIED");
    expect(other.hint).toContain("Recipients → Mailboxes → shared@contoso.com → Delegation");
    const plain = toM365Error(r, {
      ...ctx,
      token: tokenFacts(
        jwt({ aud: "https://outlook.office.com", scp: "SMTP.Send", upn: "support@contoso.com" }),
      ),
    });
    expect(plain.code).toBe("AUTH_FAILED");
  });

  it("SendAsDenied, 432, 421 4.4.2, daily quota, size, 4xx and 5xx", () => {
    const sendAs = toM365Error(
      reply(
        "554 5.2.252 SendAsDenied; support@contoso.com not allowed to send as alice@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; …",
        "EMESSAGE",
      ),
      ctx,
    );
    expect(sendAs).toMatchObject({ code: "SEND_AS_DENIED", retryable: false });
    expect(sendAs.hint).toContain(
      "Mailboxes → alice@contoso.com → Delegation → Send as → add support@contoso.com",
    );
    expect(
      toM365Error(reply("432 4.3.2 Concurrent connections limit exceeded. [X]", "EMESSAGE"), ctx),
    ).toMatchObject({
      code: "THROTTLED",
      retryable: true,
    });
    expect(
      toM365Error(
        reply(
          "421 4.4.2 Message submission rate for this client has exceeded the configured limit",
          "EMESSAGE",
        ),
        ctx,
      ),
    ).toMatchObject({
      code: "THROTTLED",
      retryable: true,
    });
    const dailyLimit = toM365Error(
      reply("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; …", "EMESSAGE"),
      ctx,
    );
    expect(dailyLimit).toMatchObject({ code: "THROTTLED", retryable: false });
    // The bridge's spool holds such a message instead of failing it: only this THROTTLED is the daily limit.
    expect(isDailySendingLimit(dailyLimit)).toBe(true);
    expect(
      isDailySendingLimit(
        toM365Error(reply("432 4.3.2 Concurrent connections limit exceeded", "EMESSAGE"), ctx),
      ),
    ).toBe(false);
    expect(
      toM365Error(reply("552 5.3.4 Message size exceeds fixed maximum message size", "EMESSAGE"), ctx).code,
    ).toBe("MESSAGE_TOO_LARGE");
    expect(
      toM365Error(reply("451 4.7.0 Temporary server error. Please try again later. PRX4", "EMESSAGE"), ctx),
    ).toMatchObject({
      code: "SERVER_ERROR",
      retryable: true,
    });
    expect(toM365Error(reply("550 5.7.1 Delivery not authorized", "EMESSAGE"), ctx)).toMatchObject({
      code: "SERVER_ERROR",
      retryable: false,
    });
    expect(toM365Error(reply("550 5.1.1 User unknown", "EENVELOPE"), ctx).code).toBe("MESSAGE_INVALID");
  });

  it("socket failures, TLS trust, timeouts, aborts", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED"), {
      code: "ESOCKET",
      originalCode: "ECONNREFUSED",
    });
    expect(toM365Error(refused, ctx)).toMatchObject({ code: "CONNECTION_FAILED", retryable: true });
    const untrusted = Object.assign(new Error("self-signed certificate in certificate chain"), {
      code: "ESOCKET",
      originalCode: "SELF_SIGNED_CERT_IN_CHAIN",
    });
    expect(toM365Error(untrusted, ctx)).toMatchObject({ code: "CONNECTION_FAILED", retryable: false });
    expect(toM365Error(Object.assign(new Error("Timeout"), { code: "ETIMEDOUT" }), ctx).code).toBe("TIMEOUT");
    expect(toM365Error(Object.assign(new Error("aborted"), { name: "AbortError" }), ctx).code).toBe(
      "ABORTED",
    );
  });

  it("not sent, or maybe sent: only failures before the connection was up say the message was not sent", () => {
    const conn = (message: string, code: string, originalCode?: string) =>
      Object.assign(new Error(message), { code, command: "CONN", ...(originalCode ? { originalCode } : {}) });
    // Nothing reached Exchange: refused, unreachable, no greeting, TLS.
    for (const error of [
      conn("connect ECONNREFUSED 127.0.0.1:587", "ESOCKET", "ECONNREFUSED"),
      conn("getaddrinfo ENOTFOUND smtp.office365.com", "ESOCKET", "ENOTFOUND"),
      conn("Connection timeout", "ETIMEDOUT"),
      conn("Greeting never received", "ETIMEDOUT"),
      conn("Error initiating TLS", "ETLS"),
    ]) {
      expect(toSendError(error, ctx).requestSent).toBe(false);
    }
    // nodemailer also says CONN when the connection drops (or goes silent) after the message's final dot:
    // Exchange may have accepted it, so it is not "not sent".
    for (const error of [
      conn("Connection closed unexpectedly", "ECONNECTION"),
      conn("Timeout", "ETIMEDOUT"),
      conn("read ECONNRESET", "ESOCKET", "ECONNRESET"),
    ]) {
      expect(toSendError(error, ctx).requestSent).toBeUndefined();
    }
    expect(
      toSendError(Object.assign(new Error("x"), { code: "EENVELOPE", command: "RCPT TO" }), ctx).requestSent,
    ).toBe(false);
    // A refusal Exchange answered, also to the final dot: it did not take the message.
    expect(toSendError(reply("451 4.3.0 Temporary server error", "EMESSAGE"), ctx).requestSent).toBe(false);
  });

  it("passes the token provider's own typed error through untouched", () => {
    const original = new M365MailError("MFA_REQUIRED", "MFA", { source: "auth-ropc" });
    const carrier = Object.assign(new Error("the token provider failed"), {
      code: "EAUTH",
      m365Error: original,
    });
    expect(toM365Error(carrier, ctx)).toBe(original);
    expect(original.code).toBe("MFA_REQUIRED");
  });
});
