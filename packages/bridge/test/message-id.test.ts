import { describe, expect, it } from "vitest";
import { withMessageId } from "../src/smtp/message-id.js";

const fix = (text: string) => {
  const { raw, messageId } = withMessageId(Buffer.from(text, "latin1"), "scanner@contoso.com");
  return { text: raw.toString("latin1"), messageId };
};

describe("the spool's Message-ID (what Sent Items are searched for before a resend)", () => {
  it("keeps a well-formed one and the bytes as they are", () => {
    const text = "From: a@contoso.com\r\nMessage-ID: <scan-1@printer>\r\n\r\nbody\r\n";
    expect(fix(text)).toEqual({ text, messageId: "<scan-1@printer>" });
  });

  it("adds one when there is none", () => {
    const { text, messageId } = fix("From: a@contoso.com\r\n\r\nbody\r\n");
    expect(messageId).toMatch(/^<[^@>]+@contoso\.com>$/);
    expect(text).toBe(`Message-ID: ${messageId}\r\nFrom: a@contoso.com\r\n\r\nbody\r\n`);
  });

  it("writes a scanner's ID without angle brackets, or folded, as one Message-ID line: never two", () => {
    expect(fix("From: a@contoso.com\r\nMessage-ID: scan-2@printer\r\nSubject: s\r\n\r\nbody\r\n")).toEqual({
      text: "From: a@contoso.com\r\nMessage-ID: <scan-2@printer>\r\nSubject: s\r\n\r\nbody\r\n",
      messageId: "<scan-2@printer>",
    });
    expect(fix("From: a@contoso.com\r\nMessage-ID:\r\n <scan-3@printer>\r\n\r\nbody\r\n")).toEqual({
      text: "From: a@contoso.com\r\nMessage-ID: <scan-3@printer>\r\n\r\nbody\r\n",
      messageId: "<scan-3@printer>",
    });
  });

  it("replaces one that is no address", () => {
    const { text, messageId } = fix("Message-ID: not an id\r\nFrom: a@contoso.com\r\n\r\nbody\r\n");
    expect(messageId).toMatch(/@contoso\.com>$/);
    expect(text).toBe(`Message-ID: ${messageId}\r\nFrom: a@contoso.com\r\n\r\nbody\r\n`);
    expect(text.match(/^message-id:/gim)).toHaveLength(1);
  });
});
