import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_MAIL, type GraphFixture, mailTo, startGraphFixture } from "./graph-fixtures.js";

let f: GraphFixture;
let support: string;
let alice: string;

beforeAll(async () => {
  f = await startGraphFixture();
  support = await f.token(ALL_MAIL);
  alice = await f.token(ALL_MAIL, "alice@contoso.com");
});
afterAll(async () => {
  await f.cleanup();
});

/** Sends from alice@ to support@ (cc shared@) and returns the message as support@ sees it. */
async function received(subject: string) {
  const sent = await f.call("POST", "/v1.0/me/sendMail", {
    token: alice,
    body: mailTo(["support@contoso.com"], subject, {
      ccRecipients: [{ emailAddress: { address: "shared@contoso.com" } }],
    }),
  });
  expect(sent.status).toBe(202);
  const list = await f.call(
    "GET",
    `/v1.0/me/messages?$search=${encodeURIComponent(`"subject:${subject.split(" ").at(-1)}"`)}`,
    { token: support },
  );
  return list.json.value[0];
}

describe("reply, reply-all, forward", () => {
  it("createReply: a draft to the sender, RE: subject, threaded, the original quoted below the comment", async () => {
    const original = await received("Printer broken r1x");
    const draft = await f.call("POST", `/v1.0/me/messages/${original.id}/createReply`, {
      token: support,
      body: { comment: "On my way." },
    });
    expect(draft.status).toBe(201);
    expect(draft.json).toMatchObject({ isDraft: true, subject: "RE: Printer broken r1x" });
    expect(draft.json.toRecipients.map((r: any) => r.emailAddress.address)).toEqual(["alice@contoso.com"]);
    const mime = (await f.call("GET", `/v1.0/me/messages/${draft.json.id}/$value`, { token: support })).text;
    expect(mime).toContain(`In-Reply-To: ${original.internetMessageId}`);
    expect(mime).toMatch(/References: .*</);
    const body: string = draft.json.body.content;
    expect(body.indexOf("On my way.")).toBeLessThan(body.indexOf("Body of Printer broken r1x"));
    expect(body).toContain("From: ");
  });

  it("createReply: message properties replace what Outlook computed (body: no quote; toRecipients: not the sender)", async () => {
    const original = await received("Replace r4x");
    const draft = await f.call("POST", `/v1.0/me/messages/${original.id}/createReply`, {
      token: support,
      body: {
        message: {
          body: { contentType: "HTML", content: "<p>only this</p>" },
          toRecipients: [{ emailAddress: { address: "shared@contoso.com" } }],
        },
      },
    });
    expect(draft.status).toBe(201);
    expect(draft.json.toRecipients.map((r: any) => r.emailAddress.address)).toEqual(["shared@contoso.com"]);
    expect(draft.json.body.content).toContain("only this");
    expect(draft.json.body.content).not.toContain("Body of Replace r4x");
  });

  it("replyAll sends at once to the sender and the other recipients, never to the mailbox itself", async () => {
    const original = await received("Team note r2x");
    const sent = await f.call("POST", `/v1.0/me/messages/${original.id}/replyAll`, {
      token: support,
      body: { comment: "Thanks all." },
    });
    expect(sent.status).toBe(202);
    const sentItems = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=50", {
      token: support,
    });
    const copy = sentItems.json.value.find((m: any) => m.subject === "RE: Team note r2x");
    expect(copy.toRecipients.map((r: any) => r.emailAddress.address)).toEqual(["alice@contoso.com"]);
    expect(copy.ccRecipients.map((r: any) => r.emailAddress.address)).toEqual(["shared@contoso.com"]);
  });

  it("forward needs recipients (400 ErrorInvalidRecipients); with them it carries the attachments", async () => {
    const sent = await f.call("POST", "/v1.0/me/sendMail", {
      token: alice,
      body: mailTo(["support@contoso.com"], "Scan r3x", {
        attachments: [
          {
            "@odata.type": "#microsoft.graph.fileAttachment",
            name: "scan.txt",
            contentBytes: Buffer.from("scanned").toString("base64"),
          },
        ],
      }),
    });
    expect(sent.status).toBe(202);
    const original = (
      await f.call("GET", `/v1.0/me/messages?$search=${encodeURIComponent('"subject:r3x"')}`, {
        token: support,
      })
    ).json.value[0];
    const refused = await f.call("POST", `/v1.0/me/messages/${original.id}/forward`, {
      token: support,
      body: { comment: "fyi" },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error.code).toBe("ErrorInvalidRecipients");
    const forwarded = await f.call("POST", `/v1.0/me/messages/${original.id}/forward`, {
      token: support,
      body: { comment: "fyi", toRecipients: [{ emailAddress: { address: "alice@contoso.com" } }] },
    });
    expect(forwarded.status).toBe(202);
    const inbox = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=50&$expand=attachments", {
      token: alice,
    });
    const fw = inbox.json.value.find((m: any) => m.subject === "FW: Scan r3x");
    expect(fw.attachments.map((a: any) => a.name)).toEqual(["scan.txt"]);
  });
});

describe("$search", () => {
  it("matches word prefixes in from, subject and body; every term must match", async () => {
    await received("Quarterly numbers s1x");
    const search = async (kql: string) =>
      (
        await f.call("GET", `/v1.0/me/messages?$search=${encodeURIComponent(`"${kql}"`)}`, { token: support })
      ).json.value.map((m: any) => m.subject);
    expect(await search("subject:quarter")).toContain("Quarterly numbers s1x");
    expect(await search("from:alice s1x")).toEqual(["Quarterly numbers s1x"]);
    expect(await search("from:bob s1x")).toEqual([]);
    expect(await search("uarterly")).not.toContain("Quarterly numbers s1x");
  });

  it("reads KQL as Graph does: escaped phrases, OR, NOT, parentheses, cc and recipients", async () => {
    await received("Budget OR review k1x");
    const search = async (kql: string) =>
      (
        await f.call("GET", `/v1.0/me/messages?$search=${encodeURIComponent(kql)}`, { token: support })
      ).json.value.map((m: any) => m.subject);
    const hit = ["Budget OR review k1x"];
    expect(await search('"(to:shared OR cc:shared) k1x"')).toEqual(hit);
    expect(await search('"recipients:shared k1x"')).toEqual(hit);
    expect(await search('"to:shared k1x"')).toEqual([]);
    // A phrase (its quotes escaped inside the OData string) is literal: OR in it is a word.
    expect(await search('"subject:\\"budget OR review\\" k1x"')).toEqual(hit);
    expect(await search('"subject:\\"OR budget\\" k1x"')).toEqual([]);
    expect(await search('"k1x NOT from:alice"')).toEqual([]);
    expect(await search('"k1x (from:bob OR subject:budget)"')).toEqual(hit);
    const unbalanced = await f.call("GET", `/v1.0/me/messages?$search=${encodeURIComponent('"(k1x"')}`, {
      token: support,
    });
    expect(unbalanced.status).toBe(400);
  });

  it("refuses $orderby and $filter beside $search, as Graph does", async () => {
    for (const extra of ["$orderby=receivedDateTime desc", "$filter=isRead eq false"]) {
      const answer = await f.call("GET", `/v1.0/me/messages?$search="x"&${extra}`, { token: support });
      expect(answer.status).toBe(400);
      expect(answer.json.error.message).toMatch(/is not supported with '\$search'/);
    }
  });
});
