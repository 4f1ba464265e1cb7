import { describe, expect, it } from "vitest";
import { composeReply, type Message, replyRecipients } from "../src/index.js";

const SELF = "support@contoso.com";

function original(headers: Record<string, string>, extra: Partial<Message> = {}): Message {
  return {
    id: "INBOX:1:1",
    subject: "Hello",
    from: { address: "alice@contoso.com", name: "Alice" },
    to: [{ address: SELF }, { address: "bob@contoso.com", name: "Bob" }],
    cc: [{ address: "carol@contoso.com" }],
    attachments: [],
    text: "hi",
    internetMessageId: "<parent@contoso.com>",
    headers,
    ...extra,
  };
}

describe("replyRecipients reads Reply-To as an RFC 5322 address list (regression: split on every comma)", () => {
  const cases: [string, string, { address: string; name?: string }[]][] = [
    [
      "a quoted name with a comma",
      '"Wilber, Alice" <alice@contoso.com>',
      [{ address: "alice@contoso.com", name: "Wilber, Alice" }],
    ],
    [
      "a comment naming the address",
      "alice@contoso.com (Alice Wilber)",
      [{ address: "alice@contoso.com", name: "Alice Wilber" }],
    ],
    [
      "an encoded-word name",
      "=?UTF-8?B?SsO2cmc=?= <jorg@contoso.com>",
      [{ address: "jorg@contoso.com", name: "Jörg" }],
    ],
    [
      "a Q-encoded name with an encoded comma",
      "=?utf-8?Q?Wilber=2C_J=C3=B6rg?= <jorg@contoso.com>",
      [{ address: "jorg@contoso.com", name: "Wilber, Jörg" }],
    ],
    [
      "a group and escaped quotes",
      'Helpdesk: "Doe, \\"JD\\" John" <john@contoso.com>, dan@contoso.com;, eve@contoso.com',
      [
        { address: "john@contoso.com", name: 'Doe, "JD" John' },
        { address: "dan@contoso.com" },
        { address: "eve@contoso.com" },
      ],
    ],
  ];
  for (const [what, replyTo, expected] of cases) {
    it(`reply: ${what}`, () => {
      expect(replyRecipients("reply", original({ "reply-to": replyTo }), SELF)).toEqual({
        to: expected,
        cc: [],
      });
    });
  }

  it("reply-all: Reply-To replaces the sender, the other recipients follow, never yourself", () => {
    const message = original({
      "Reply-To": '"Wilber, Alice" <alice@contoso.com>, "Ops, Team" <ops@contoso.com>',
    });
    expect(replyRecipients("replyAll", message, SELF)).toEqual({
      to: [
        { address: "alice@contoso.com", name: "Wilber, Alice" },
        { address: "ops@contoso.com", name: "Ops, Team" },
        { address: "bob@contoso.com", name: "Bob" },
      ],
      cc: [{ address: "carol@contoso.com" }],
    });
  });

  it("a Reply-To with no address in it (an empty group) falls back to From", () => {
    expect(replyRecipients("reply", original({ "reply-to": "undisclosed-recipients:;" }), SELF).to).toEqual([
      { address: "alice@contoso.com", name: "Alice" },
    ]);
  });

  it("composeReply builds a valid message for each of those forms (was MESSAGE_INVALID)", () => {
    for (const [, replyTo, expected] of cases) {
      const reply = composeReply(original({ "reply-to": replyTo }), { kind: "reply", text: "ok" }, SELF);
      expect(reply.to).toEqual(expected);
    }
  });
});
describe("composeReply threading headers (RFC 5322 3.6.4)", () => {
  const headers = (parent: Record<string, string>, extra: Partial<Message> = {}) =>
    composeReply(original(parent, extra), { kind: "reply", text: "ok" }, SELF).headers;

  it("References = the parent's References + its Message-ID", () => {
    expect(headers({ references: "<r1@x> <r2@x>", "in-reply-to": "<r2@x>" })).toEqual({
      "In-Reply-To": "<parent@contoso.com>",
      References: "<r1@x> <r2@x> <parent@contoso.com>",
    });
  });

  it("without References, a single-id In-Reply-To stands in for it (regression: it was dropped)", () => {
    expect(headers({ "in-reply-to": "<r2@x>" })).toEqual({
      "In-Reply-To": "<parent@contoso.com>",
      References: "<r2@x> <parent@contoso.com>",
    });
  });

  it("an In-Reply-To with several ids is not used (the RFC allows only one)", () => {
    expect(headers({ "in-reply-to": "<r1@x> <r2@x>" })?.References).toBe("<parent@contoso.com>");
  });

  it("folded or comma-joined References keep only their message ids", () => {
    expect(headers({ references: "<r1@x>,\t<r2@x> (comment)" })?.References).toBe(
      "<r1@x> <r2@x> <parent@contoso.com>",
    );
  });

  it("a parent without a Message-ID: no In-Reply-To, References still carries the thread", () => {
    expect(headers({ references: "<r1@x>" }, { internetMessageId: undefined })).toEqual({
      References: "<r1@x>",
    });
    expect(headers({}, { internetMessageId: undefined })).toBeUndefined();
  });
});
