import { describe, expect, it } from "vitest";
import { headerAddresses, withEnvelopeRecipients } from "../src/smtp/recipients.js";

describe("envelope recipients for Graph (which delivers to the headers)", () => {
  it("reads the addresses of To/Cc/Bcc, not the words of display names, comments or group names", () => {
    const header = [
      'To: "Team (cc noimap@contoso.com)" <support@contoso.com>, alice@contoso.com (Alice, bob@x.com)',
      "Cc: Ops: ops@contoso.com, Night Shift <night@contoso.com>;",
      "Bcc: undisclosed-recipients:;",
      "From: carol@contoso.com",
    ].join("\r\n");
    expect(headerAddresses(header, ["to", "cc", "bcc"])).toEqual([
      "support@contoso.com",
      "alice@contoso.com",
      "ops@contoso.com",
      "night@contoso.com",
    ]);
  });

  it("an envelope recipient only mentioned in a display name still gets a Bcc header; the body is untouched", () => {
    const raw = Buffer.from(
      'From: support@contoso.com\r\nTo: "Team (cc noimap@contoso.com)" <support@contoso.com>\r\n\r\nbody\r\n',
    );
    const out = withEnvelopeRecipients(raw, ["support@contoso.com", "NoImap@contoso.com"]).toString();
    expect(out).toBe(`Bcc: noimap@contoso.com\r\n${raw.toString()}`);
    expect(withEnvelopeRecipients(raw, ["support@contoso.com"])).toBe(raw);
  });

  it("adds to the message's own Bcc field instead of a second one", () => {
    const raw = Buffer.from("To: support@contoso.com\r\nBcc: alice@contoso.com\r\n\r\nbody\r\n");
    const out = withEnvelopeRecipients(raw, [
      "support@contoso.com",
      "alice@contoso.com",
      "noimap@contoso.com",
    ]);
    expect(out.toString()).toBe(
      "To: support@contoso.com\r\nBcc: alice@contoso.com,\r\n noimap@contoso.com\r\n\r\nbody\r\n",
    );
    const empty = Buffer.from("To: support@contoso.com\r\nBcc:\r\n\r\nbody\r\n");
    expect(withEnvelopeRecipients(empty, ["support@contoso.com", "noimap@contoso.com"]).toString()).toBe(
      "To: support@contoso.com\r\nBcc: noimap@contoso.com\r\n\r\nbody\r\n",
    );
  });
});
