import { describe, expect, it } from "vitest";
import { buildMail } from "../src/build-message.js";
import { backoffDelay, DEFAULT_RETRY } from "../src/retry.js";

describe("buildMail", () => {
  it("defaults From to the mailbox, generates a Message-ID on its domain, puts bcc in the envelope only", () => {
    const built = buildMail(
      { to: "Alice <alice@contoso.com>", bcc: "audit@contoso.com", subject: "Hi", text: "x" },
      "shared@contoso.com",
    );
    expect(built.mail.from).toBe("shared@contoso.com");
    expect(built.messageId).toMatch(/^<[0-9a-f]{32}@contoso\.com>$/);
    expect(built.envelope).toEqual({
      from: "shared@contoso.com",
      to: ["alice@contoso.com", "audit@contoso.com"],
    });
    expect(built.mail.to).toEqual(["Alice <alice@contoso.com>"]);
  });

  it("keeps a given Message-ID and marks cid attachments inline", () => {
    const built = buildMail(
      {
        to: "alice@contoso.com",
        messageId: "<fixed@contoso.com>",
        html: '<img src="cid:logo">',
        attachments: [{ filename: "logo.png", content: new Uint8Array([1]), contentId: "<logo>" }],
      },
      "support@contoso.com",
    );
    expect(built.messageId).toBe("<fixed@contoso.com>");
    expect(built.mail.attachments).toEqual([
      expect.objectContaining({ cid: "logo", contentDisposition: "inline" }),
    ]);
  });

  it("takes a raw message's recipients and Message-ID from its headers, adding a Message-ID when missing", () => {
    const raw =
      "From: support@contoso.com\r\nTo: a@contoso.com, B <b@contoso.com>\r\nCc: c@contoso.com\r\nSubject: x\r\n\r\nbody";
    const built = buildMail({ raw }, "support@contoso.com");
    expect(built.envelope).toEqual({
      from: "support@contoso.com",
      to: ["a@contoso.com", "b@contoso.com", "c@contoso.com"],
    });
    expect(built.messageId).toMatch(/^<.+@contoso\.com>$/);
    expect(String(built.mail.raw)).toMatch(/^Message-ID: <.+@contoso\.com>\r\nFrom: /);
  });

  it("refuses header injection before anything is sent", () => {
    expect(() =>
      buildMail({ to: "a@contoso.com", headers: { "X-A": "1\r\nBcc: x@evil.example" } }, "s@contoso.com"),
    ).toThrow(/malformed/);
  });
});

describe("backoffDelay", () => {
  it("doubles up to the ceiling, with jitter between half and all of it", () => {
    expect(backoffDelay(0, DEFAULT_RETRY, () => 0)).toBe(500);
    expect(backoffDelay(0, DEFAULT_RETRY, () => 1)).toBe(1000);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 1)).toBe(8000);
    expect(backoffDelay(10, DEFAULT_RETRY, () => 1)).toBe(30_000);
  });
});
