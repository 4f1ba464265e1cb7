import { describe, expect, it } from "vitest";
import { decodeSaslPlain } from "../src/relay/sasl-plain.js";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

describe("SASL PLAIN responses (IMAP AUTHENTICATE PLAIN, POP3 AUTH PLAIN)", () => {
  it("an authorization identity equal to the login, in any case, is the login; another one is refused", () => {
    expect(decodeSaslPlain(b64("\0support@contoso.com\0pw"))).toEqual({
      username: "support@contoso.com",
      password: "pw",
    });
    expect(decodeSaslPlain(b64("Support@Contoso.com\0support@contoso.com\0pw"))).toEqual({
      username: "support@contoso.com",
      password: "pw",
    });
    expect(decodeSaslPlain(b64("alice@contoso.com\0support@contoso.com\0pw"))).toBeUndefined();
    expect(decodeSaslPlain("not base64!")).toBeUndefined();
  });
});
