import { afterEach, describe, expect, it } from "vitest";
import {
  forgetSecret,
  M365MailError,
  redact,
  redactValue,
  registerSecret,
  safeLogger,
} from "../src/index.js";

const jwt =
  "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

describe("redaction", () => {
  afterEach(() => forgetSecret("Tr0ub4dor&3"));

  it("removes JWTs, Bearer values, OAuth form fields and XOAUTH2 strings", () => {
    const text = [
      `token ${jwt}`,
      "Authorization: Bearer abc.def-ghi",
      "grant_type=password&username=a%40b.c&password=hunter22&scope=x",
      '{"refresh_token":"0.AAAA-secret"}',
      "AUTH XOAUTH2 dXNlcj1zdXBwb3J0QGNvbnRvc28uY29tAWF1dGg9QmVhcmVyIGV5SjAB",
    ].join("\n");
    const out = redact(text);
    for (const secret of [jwt, "abc.def-ghi", "hunter22", "0.AAAA-secret", "dXNlcj1zdXBwb3J0"]) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain("username=a%40b.c");
    expect(out).toContain("AUTH XOAUTH2 [REDACTED]");
  });

  it("removes registered secrets wherever they appear", () => {
    registerSecret("Tr0ub4dor&3");
    expect(redact("login failed for pw Tr0ub4dor&3!")).toBe("login failed for pw [REDACTED]!");
  });

  it("never lets a secret into an error message or hint", () => {
    registerSecret("Tr0ub4dor&3");
    const error = new M365MailError("AUTH_FAILED", `bad password Tr0ub4dor&3 with ${jwt}`, {
      hint: "check Tr0ub4dor&3",
      source: "auth-ropc",
    });
    const all = JSON.stringify(error.toJSON()) + error.message;
    expect(all).not.toContain("Tr0ub4dor&3");
    expect(all).not.toContain(jwt);
    expect(error.message).toMatch(/^\[m365-mail\] \[auth-ropc\] bad password/);
    expect(error.retryable).toBe(false);
  });

  it("redacts structured log fields by key and by value", () => {
    const lines: unknown[] = [];
    const sink = (...args: unknown[]) => lines.push(args);
    const logger = safeLogger({ debug: sink, info: sink, warn: sink, error: sink }, "test");
    logger.info(`got ${jwt}`, { password: "p@ss-1234", nested: { header: `Bearer ${jwt}` }, user: "a@b.c" });
    const text = JSON.stringify(lines);
    expect(text).not.toContain(jwt);
    expect(text).not.toContain("p@ss-1234");
    expect(text).toContain("a@b.c");
    expect(redactValue({ access_token: "x" })).toEqual({ access_token: "[REDACTED]" });
  });

  it("keeps the cause and defaults retryable from the code", () => {
    const cause = new Error("socket hang up");
    const error = new M365MailError("CONNECTION_FAILED", "server gone", { cause });
    expect(error.cause).toBe(cause);
    expect(error.retryable).toBe(true);
  });
});
