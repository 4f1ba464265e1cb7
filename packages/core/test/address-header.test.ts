import { describe, expect, it } from "vitest";
import { decodeEncodedWords, parseAddressHeader } from "../src/index.js";

describe("decodeEncodedWords", () => {
  it("joins adjacent words before decoding, so a character split across two survives", () => {
    // "é" is C3 A9 in UTF-8, split over two encoded words.
    expect(decodeEncodedWords("=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=")).toBe("café");
  });
  it("keeps text between words that is not only white space, and leaves unknown charsets alone", () => {
    expect(decodeEncodedWords("=?utf-8?q?a?= and =?utf-8?q?b?=")).toBe("a and b");
    expect(decodeEncodedWords("=?x-unknown?q?a?=")).toBe("=?x-unknown?q?a?=");
    expect(decodeEncodedWords("plain =? text")).toBe("plain =? text");
  });
});

describe("parseAddressHeader", () => {
  it("handles quoted names with commas, escapes, comments and angle addresses", () => {
    expect(
      parseAddressHeader(
        ' "Doe, John" <john@x.com>, k@y.com (Kay Y), "A \\"B\\"" <ab@z.com>,  Pat  Lee  < pat@z.com >',
      ),
    ).toEqual([
      { address: "john@x.com", name: "Doe, John" },
      { address: "k@y.com", name: "Kay Y" },
      { address: "ab@z.com", name: 'A "B"' },
      { address: "pat@z.com", name: "Pat Lee" },
    ]);
  });
  it("lists a group's members, not the group, and skips empty groups and entries", () => {
    expect(parseAddressHeader(" Team: a@z.com, B <b@z.com>;, c@z.com")).toEqual([
      { address: "a@z.com" },
      { address: "b@z.com", name: "B" },
      { address: "c@z.com" },
    ]);
    expect(parseAddressHeader(" undisclosed-recipients:;")).toEqual([]);
    expect(parseAddressHeader(" , ,")).toEqual([]);
    expect(parseAddressHeader(undefined)).toEqual([]);
  });
  it("reads encoded-word names, colons inside quotes, obsolete routes and nested comments", () => {
    expect(
      parseAddressHeader(
        '=?UTF-8?B?SsO2cmc=?= <j@x.de>, "Re: Ops" <ops@x.de>, <@relay.x.de:route@x.de>, n@x.de (a (nested) note)',
      ),
    ).toEqual([
      { address: "j@x.de", name: "Jörg" },
      { address: "ops@x.de", name: "Re: Ops" },
      { address: "route@x.de" },
      { address: "n@x.de", name: "a (nested) note" },
    ]);
  });
});
