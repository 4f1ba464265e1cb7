import { describe, expect, it } from "vitest";
import { parseMessage } from "../src/parse-message.js";
import type { ImapMessageSummary } from "../src/summary.js";
import { hasAttachmentPart } from "../src/summary.js";

const summary: ImapMessageSummary = {
  id: "INBOX:1:1",
  folder: "INBOX",
  uid: 1,
  uidValidity: 1,
  subject: "",
  to: [],
  cc: [],
  flags: [],
};

describe("parseMessage", () => {
  it("returns text, html, headers and attachments byte for byte", async () => {
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
    const source = Buffer.from(
      [
        "From: Alice <alice@contoso.com>",
        "To: support@contoso.com",
        "Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9?=",
        "Message-ID: <m1@contoso.com>",
        "X-Custom: one",
        "X-Custom: two",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        "",
        "--b1",
        'Content-Type: multipart/alternative; boundary="b2"',
        "",
        "--b2",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Hello text",
        "--b2",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<p>Hello html</p>",
        "--b2--",
        "--b1",
        'Content-Type: application/octet-stream; name="data.bin"',
        "Content-Transfer-Encoding: base64",
        'Content-Disposition: attachment; filename="data.bin"',
        "",
        bytes.toString("base64"),
        "--b1--",
        "",
      ].join("\r\n"),
    );
    const message = await parseMessage(summary, source);
    expect(message.subject).toBe("Résumé");
    expect(message.text?.trim()).toBe("Hello text");
    expect(message.html).toContain("<p>Hello html</p>");
    expect(message.headers?.["x-custom"]).toBe("one, two");
    expect(message.attachments).toHaveLength(1);
    expect(message.attachments[0]).toMatchObject({
      filename: "data.bin",
      contentType: "application/octet-stream",
      size: 300,
    });
    expect(Buffer.from(message.attachments[0]!.content).equals(bytes)).toBe(true);
    expect(message.hasAttachments).toBe(true);
    expect(Buffer.from(message.raw).equals(source)).toBe(true);
  });
});

describe("hasAttachmentPart", () => {
  it("finds attachments in nested structures and ignores inline text", () => {
    expect(
      hasAttachmentPart({
        type: "multipart/mixed",
        childNodes: [
          { type: "text/plain" },
          {
            type: "application/pdf",
            disposition: "attachment",
            dispositionParameters: { filename: "a.pdf" },
          },
        ],
      }),
    ).toBe(true);
    expect(
      hasAttachmentPart({
        type: "multipart/alternative",
        childNodes: [{ type: "text/plain" }, { type: "text/html" }],
      }),
    ).toBe(false);
    expect(hasAttachmentPart(undefined)).toBeUndefined();
  });
});
