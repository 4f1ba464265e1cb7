import { describe, expect, it } from "vitest";
import { isConnectionDrop, toImapError } from "../src/imap-errors.js";

const at = { operation: "FETCH INBOX", host: "outlook.office365.com", port: 993 };
const err = (message: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), extra);

describe("toImapError", () => {
  it("maps timeouts to TIMEOUT", () => {
    const e = toImapError(err("Failed to receive greeting", { code: "GREETING_TIMEOUT" }), at);
    expect(e.code).toBe("TIMEOUT");
    expect(e.retryable).toBe(true);
  });
  it("maps refused and dropped connections to CONNECTION_FAILED", () => {
    expect(toImapError(err("connect ECONNREFUSED", { code: "ECONNREFUSED" }), at).code).toBe(
      "CONNECTION_FAILED",
    );
    expect(toImapError(err("Connection not available", { code: "NoConnection" }), at).code).toBe(
      "CONNECTION_FAILED",
    );
  });
  it("tells a certificate problem apart and names the `ca` option", () => {
    const e = toImapError(
      err("self-signed certificate in certificate chain", { code: "SELF_SIGNED_CERT_IN_CHAIN" }),
      at,
    );
    expect(e.code).toBe("CONNECTION_FAILED");
    expect(e.retryable).toBe(false);
    expect(e.hint).toContain("`ca`");
  });
  it("maps Exchange's too-many-connections answer to THROTTLED", () => {
    expect(
      toImapError(err("Command failed", { responseText: "User is authenticated but not connected." }), at)
        .code,
    ).toBe("THROTTLED");
  });
  it("takes Exchange's back-off from a throttled command's answer", () => {
    const e = toImapError(
      err("Command failed", {
        responseText: "Request is throttled. Suggested Backoff Time: 299910 milliseconds",
      }),
      at,
    );
    expect(e.code).toBe("THROTTLED");
    expect(e.retryAfterSeconds).toBe(300);
    expect(e.hint).toContain("Wait about 300 s");
  });
  it("maps a missing mailbox to NOT_FOUND", () => {
    expect(toImapError(err("Command failed", { responseText: "Mailbox doesn't exist: Nope" }), at).code).toBe(
      "NOT_FOUND",
    );
  });
  it("keeps the original error as cause", () => {
    const original = err("boom");
    expect(toImapError(original, at).cause).toBe(original);
  });
});

describe("isConnectionDrop", () => {
  it("is true for a closed connection and false for a refused command", () => {
    expect(isConnectionDrop(err("Connection closed", { code: "EConnectionClosed" }))).toBe(true);
    expect(isConnectionDrop(err("Command failed", { responseStatus: "NO" }))).toBe(false);
  });
});
