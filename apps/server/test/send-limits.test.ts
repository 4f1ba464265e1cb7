import { M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { checkAtTheDoor } from "../src/send-limits.js";

// The size limits with sizes no test should upload: only the byte counts matter to the check.
const MB = 1024 * 1024;

function refusal(run: () => void): M365MailError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    return error as M365MailError;
  }
  throw new Error("expected a refusal");
}

describe("checkAtTheDoor sizes", () => {
  it("Graph: attachments uploaded in parts may reach 150 MB with the body, not more", () => {
    const body = { to: "alice@contoso.com", text: "x" };
    expect(() =>
      checkAtTheDoor(body, "graph", { attachmentBytes: [100 * MB, 49 * MB], smtpAvailable: true }),
    ).not.toThrow();
    const error = refusal(() =>
      checkAtTheDoor(body, "graph", { attachmentBytes: [100 * MB, 50 * MB], smtpAvailable: true }),
    );
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(error.message).toContain("over Graph's limit of 157286400 (150 MB)");
  });

  it("SMTP: 35 MB counts attachments as base64 — 26 MB of files is already over", () => {
    const body = { to: "alice@contoso.com", text: "x" };
    expect(() =>
      checkAtTheDoor(body, "smtp", { attachmentBytes: [25 * MB], smtpAvailable: true }),
    ).not.toThrow();
    const error = refusal(() =>
      checkAtTheDoor(body, "smtp", { attachmentBytes: [26 * MB], smtpAvailable: true }),
    );
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(error.message).toContain("(35 MB)");
  });

  it("SMTP: a non-ASCII body counts as base64 too", () => {
    const ascii = { to: "alice@contoso.com", text: "a".repeat(30 * MB) };
    expect(() => checkAtTheDoor(ascii, "smtp", { attachmentBytes: [], smtpAvailable: true })).not.toThrow();
    const accented = { to: "alice@contoso.com", text: "é".repeat(15 * MB) };
    expect(
      refusal(() => checkAtTheDoor(accented, "smtp", { attachmentBytes: [], smtpAvailable: true })).code,
    ).toBe("MESSAGE_TOO_LARGE");
  });
});
