import { describe, expect, it } from "vitest";
import { decodeSaslChallenge, decodeXOAuth2, encodeOAuthBearer, encodeXOAuth2 } from "../src/index.js";

describe("SASL encoders", () => {
  it("XOAUTH2 matches the published example (developers.google.com/gmail/imap/xoauth2-protocol)", () => {
    expect(encodeXOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")).toBe(
      "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==",
    );
  });

  it("OAUTHBEARER matches RFC 7628 section 4.1", () => {
    expect(
      encodeOAuthBearer(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        "server.example.com",
        143,
      ),
    ).toBe(
      "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB",
    );
  });

  it("OAUTHBEARER escapes ',' and '=' in the authorization identity (RFC 5801)", () => {
    const decoded = Buffer.from(encodeOAuthBearer("a,b=c@x.com", "t"), "base64").toString();
    expect(decoded).toBe("n,a=a=2Cb=3Dc@x.com,\x01auth=Bearer t\x01\x01");
  });

  it("XOAUTH2 round-trips through the decoder, including a shared mailbox user", () => {
    const encoded = encodeXOAuth2("shared@contoso.com", "eyJ0.abc.def");
    expect(decodeXOAuth2(encoded)).toEqual({ user: "shared@contoso.com", token: "eyJ0.abc.def" });
    expect(decodeXOAuth2(Buffer.from("user=x\x01auth=Basic y\x01\x01").toString("base64"))).toBeUndefined();
  });

  it("decodes the JSON challenge servers send after a failed XOAUTH2", () => {
    const challenge = Buffer.from(
      '{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}',
    ).toString("base64");
    expect(decodeSaslChallenge(challenge)).toEqual({
      status: "401",
      schemes: "bearer",
      scope: "https://mail.google.com/",
    });
    expect(decodeSaslChallenge("not base64 json")).toBeUndefined();
  });
});
