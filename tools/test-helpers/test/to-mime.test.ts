import { describe, expect, it } from "vitest";
import { toMime } from "../src/index.js";

describe("toMime", () => {
  it("composes headers, body and a base64 attachment, with a default sender", async () => {
    const mime = (
      await toMime({
        to: ["support@contoso.com", "alice@contoso.com"],
        subject: "Report 42",
        text: "attached",
        attachments: [
          {
            filename: "data.bin",
            content: new Uint8Array([1, 2, 3]),
            contentType: "application/octet-stream",
          },
        ],
      })
    ).toString();
    expect(mime).toMatch(/^From: bob@fabrikam\.com$/m);
    expect(mime).toMatch(/^To: support@contoso\.com, alice@contoso\.com$/m);
    expect(mime).toMatch(/^Subject: Report 42$/m);
    expect(mime).toContain("filename=data.bin");
    expect(mime).toContain(Buffer.from([1, 2, 3]).toString("base64"));
  });

  it("returns raw messages as they are", async () => {
    const raw = "Subject: as is\r\n\r\nbody\r\n";
    expect((await toMime({ raw, to: "support@contoso.com" })).toString()).toBe(raw);
  });
});
