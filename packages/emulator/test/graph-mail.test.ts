import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailStore } from "../src/store/index.js";
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

async function inbox(token: string, query = "") {
  const answer = await f.call("GET", `/v1.0/me/mailFolders/inbox/messages${query}`, { token });
  expect(answer.status).toBe(200);
  return answer.json.value as any[];
}

describe("mail folders", () => {
  it("lists Exchange's well-known folders with Graph's folder shape", async () => {
    const answer = await f.call("GET", "/v1.0/me/mailFolders", { token: support });
    expect(answer.status).toBe(200);
    expect(answer.json["@odata.context"]).toBe(
      `${f.origin}/v1.0/$metadata#users('support%40contoso.com')/mailFolders`,
    );
    const names = answer.json.value.map((folder: any) => folder.displayName);
    expect(names).toEqual(
      expect.arrayContaining(["Inbox", "Sent Items", "Drafts", "Deleted Items", "Junk Email", "Archive"]),
    );
    for (const folder of answer.json.value) {
      expect(Object.keys(folder).sort()).toEqual(
        [
          "childFolderCount",
          "displayName",
          "id",
          "isHidden",
          "parentFolderId",
          "totalItemCount",
          "unreadItemCount",
        ].sort(),
      );
    }
  });

  it("pages folders with an absolute @odata.nextLink that yields each folder once", async () => {
    const seen: string[] = [];
    let url: string | undefined = `${f.origin}/v1.0/me/mailFolders?$top=4`;
    let pages = 0;
    while (url) {
      expect(url.startsWith(`${f.origin}/v1.0/`)).toBe(true);
      const answer = await f.call("GET", url, { token: support });
      expect(answer.status).toBe(200);
      expect(answer.json.value.length).toBeLessThanOrEqual(4);
      seen.push(...answer.json.value.map((folder: any) => folder.id));
      url = answer.json["@odata.nextLink"];
      pages++;
    }
    expect(pages).toBe(2);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(6);
  });

  it.each(["inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"])(
    "resolves the well-known name %s",
    async (name) => {
      const answer = await f.call("GET", `/v1.0/me/mailFolders/${name}`, { token: support });
      expect(answer.status).toBe(200);
      expect(answer.json.id).not.toBe(name);
      const again = await f.call("GET", `/v1.0/me/mailFolders/${answer.json.id}`, { token: support });
      expect(again.json.displayName).toBe(answer.json.displayName);
    },
  );

  it("childFolders of the root are the top-level folders; a display name is not an id", async () => {
    const children = await f.call("GET", "/v1.0/me/mailFolders/msgfolderroot/childFolders?$top=50", {
      token: support,
    });
    expect(children.json.value).toHaveLength(6);
    const byName = await f.call("GET", "/v1.0/me/mailFolders/Inbox%2FNope", { token: support });
    expect(byName.status).toBe(404);
    expect(byName.json.error.code).toBe("ErrorItemNotFound");
  });
});

describe("sendMail", () => {
  it("answers 202 with an empty body, delivers to the recipient's Inbox and saves to Sent Items", async () => {
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Hello Alice", {
        ccRecipients: [{ emailAddress: { address: "someone@fabrikam.example", name: "Outside" } }],
        bccRecipients: [{ emailAddress: { address: "shared@contoso.com" } }],
      }),
    });
    expect(answer.status).toBe(202);
    expect(answer.body.length).toBe(0);

    const received = (await inbox(alice)).find((m) => m.subject === "Hello Alice");
    expect(received).toMatchObject({
      isRead: false,
      isDraft: false,
      from: { emailAddress: { address: "support@contoso.com", name: "Contoso Support" } },
      toRecipients: [{ emailAddress: { address: "alice@contoso.com" } }],
      ccRecipients: [{ emailAddress: { address: "someone@fabrikam.example", name: "Outside" } }],
      bccRecipients: [],
      body: { contentType: "text", content: "Body of Hello Alice" },
      bodyPreview: "Body of Hello Alice",
    });
    const sent = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=50", { token: support });
    const copy = sent.json.value.find((m: any) => m.subject === "Hello Alice");
    expect(copy).toMatchObject({
      isRead: true,
      bccRecipients: [{ emailAddress: { address: "shared@contoso.com" } }],
    });
    expect(copy.internetMessageId).toBe(received.internetMessageId);
    expect(f.emulator.admin.counts()["graph.dropped"]).toBeGreaterThanOrEqual(1);
  });

  it("does not save to Sent Items with saveToSentItems false", async () => {
    const body = { ...mailTo(["alice@contoso.com"], "Not saved"), saveToSentItems: false };
    expect((await f.call("POST", "/v1.0/me/sendMail", { token: support, body })).status).toBe(202);
    const sent = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=100", { token: support });
    expect(sent.json.value.some((m: any) => m.subject === "Not saved")).toBe(false);
    expect((await inbox(alice, "?$top=100")).some((m) => m.subject === "Not saved")).toBe(true);
  });

  it("accepts base64 MIME with Content-Type text/plain", async () => {
    const mime = [
      "From: Contoso Support <support@contoso.com>",
      "To: alice@contoso.com",
      "Subject: MIME hello",
      "Message-ID: <mime-hello-1@contoso.com>",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Sent as MIME.",
      "",
    ].join("\r\n");
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      raw: Buffer.from(mime).toString("base64"),
      headers: { "Content-Type": "text/plain" },
    });
    expect(answer.status).toBe(202);
    const received = (await inbox(alice, "?$top=100")).find((m) => m.subject === "MIME hello");
    expect(received.internetMessageId).toBe("<mime-hello-1@contoso.com>");
  });

  it("rejects MIME that is not base64 like Graph", async () => {
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      raw: "From: x\r\n\r\nnot base64!",
      headers: { "Content-Type": "text/plain" },
    });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({
      code: "ErrorMimeContentInvalidBase64String",
      message: "Invalid base64 string for MIME content.",
    });
  });

  it("refuses a body over 4 MB with 413", async () => {
    const big = mailTo(["alice@contoso.com"], "Too big", {
      attachments: [
        {
          "@odata.type": "#microsoft.graph.fileAttachment",
          name: "big.bin",
          contentBytes: Buffer.alloc(3_200_000).toString("base64"),
        },
      ],
    });
    const answer = await f.call("POST", "/v1.0/me/sendMail", { token: support, body: big });
    expect(answer.status).toBe(413);
    expect(String(answer.headers["content-type"])).toMatch(/^application\/json/);
    expect(answer.json.error.code).toBeTruthy();
  });

  it("needs at least one recipient", async () => {
    const answer = await f.call("POST", "/v1.0/me/sendMail", { token: support, body: mailTo([], "Nobody") });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("ErrorInvalidRecipients");
  });

  it("takes at most 5 internetMessageHeaders, each named x-…, with Graph's errors", async () => {
    const headers = (n: number, prefix = "X-Tag-") =>
      Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}`, value: String(i) }));
    const six = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Six", { internetMessageHeaders: headers(6) }),
    });
    expect(six.status).toBe(400);
    expect(six.json.error.code).toBe("InvalidInternetMessageHeaderCollection");
    expect(six.json.error.message).toBe(
      "Maximum number of headers in one message should be less than or equal to 5.",
    );
    const plain = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Plain", { internetMessageHeaders: headers(1, "List-Id-") }),
    });
    expect(plain.status).toBe(400);
    expect(plain.json.error.code).toBe("InvalidInternetMessageHeader");
    const five = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Five", { internetMessageHeaders: headers(5) }),
    });
    expect(five.status).toBe(202);
  });

  it("refuses to send as a mailbox the user has no Send As right on", async () => {
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: alice,
      body: mailTo(["support@contoso.com"], "Spoof", {
        from: { emailAddress: { address: "shared@contoso.com" } },
      }),
    });
    expect(answer.status).toBe(403);
    expect(answer.json.error.code).toBe("ErrorSendAsDenied");
  });
});

describe("messages", () => {
  const subjects = Array.from({ length: 23 }, (_, i) => `Paged ${String(i).padStart(2, "0")}`);

  beforeAll(async () => {
    for (const subject of subjects) {
      const answer = await f.call("POST", "/v1.0/me/sendMail", {
        token: alice,
        body: mailTo(["support@contoso.com"], subject),
      });
      expect(answer.status).toBe(202);
    }
  });

  it("pages with $top and absolute nextLinks, each message exactly once, newest first", async () => {
    const seen: any[] = [];
    let url: string | undefined =
      `${f.origin}/v1.0/me/mailFolders/inbox/messages?$top=5&$select=subject,receivedDateTime`;
    while (url) {
      expect(url).toMatch(
        new RegExp(`^${f.origin.replace(/\./g, "\\.")}/v1\\.0/me/mailFolders/inbox/messages\\?`),
      );
      const answer = await f.call("GET", url, { token: support });
      expect(answer.status).toBe(200);
      for (const message of answer.json.value) {
        expect(Object.keys(message).sort()).toEqual(["@odata.etag", "id", "receivedDateTime", "subject"]);
      }
      seen.push(...answer.json.value);
      url = answer.json["@odata.nextLink"];
    }
    const paged = seen.filter((m) => m.subject.startsWith("Paged"));
    expect(paged.map((m) => m.subject).sort()).toEqual(subjects);
    expect(new Set(seen.map((m) => m.id)).size).toBe(seen.length);
    const times = seen.map((m) => Date.parse(m.receivedDateTime));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it("defaults to 10 per page", async () => {
    const answer = await f.call("GET", "/v1.0/me/messages", { token: support });
    expect(answer.json.value).toHaveLength(10);
    expect(answer.json["@odata.nextLink"]).toContain("$skip=10");
  });

  it("filters isRead eq false and receivedDateTime ge, combined with and", async () => {
    const all = await inbox(support, "?$top=100");
    const first = all.find((m) => m.subject === "Paged 00");
    await f.call("PATCH", `/v1.0/me/messages/${first.id}`, { token: support, body: { isRead: true } });
    const unread = await inbox(support, "?$top=100&$filter=isRead eq false");
    expect(unread.some((m) => m.id === first.id)).toBe(false);
    expect(unread.every((m) => m.isRead === false)).toBe(true);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(await inbox(support, `?$filter=receivedDateTime ge ${future} and isRead eq false`)).toHaveLength(
      0,
    );
    const past = new Date(Date.now() - 3_600_000).toISOString();
    expect(
      (await inbox(support, `?$top=100&$filter=receivedDateTime ge ${past} and isRead eq false`)).length,
    ).toBe(unread.length);
  });

  it("finds a message by internetMessageId (how a client checks whether a send went through)", async () => {
    const [first] = await inbox(support);
    const filter = encodeURIComponent(`internetMessageId eq '${first.internetMessageId}'`);
    const found = await f.call("GET", `/v1.0/me/messages?$filter=${filter}&$select=id,internetMessageId`, {
      token: support,
    });
    expect(found.json.value).toEqual([
      expect.objectContaining({ id: first.id, internetMessageId: first.internetMessageId }),
    ]);
  });

  it("$orderby with $filter must filter the ordered property first, else 400 InefficientFilter", async () => {
    const ok = await f.call(
      "GET",
      "/v1.0/me/messages?$orderby=receivedDateTime desc&$filter=receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false",
      {
        token: support,
      },
    );
    expect(ok.status).toBe(200);
    const bad = await f.call(
      "GET",
      "/v1.0/me/messages?$orderby=receivedDateTime desc&$filter=isRead eq false",
      { token: support },
    );
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({
      code: "InefficientFilter",
      message: "The restriction or sort order is too complex for this operation.",
    });
  });

  it("answers an unsupported filter with 400", async () => {
    const answer = await f.call("GET", "/v1.0/me/messages?$filter=subject eq 'x'", { token: support });
    expect(answer.status).toBe(400);
  });

  it("rejects an unknown $select property like OData", async () => {
    const answer = await f.call("GET", "/v1.0/me/messages?$select=nope", { token: support });
    expect(answer.status).toBe(400);
    expect(answer.json.error.message).toBe(
      "Could not find a property named 'nope' on type 'microsoft.graph.message'.",
    );
  });

  it("gets one message with the message resource's fields", async () => {
    const [first] = await inbox(support);
    const answer = await f.call("GET", `/v1.0/me/messages/${first.id}`, { token: support });
    expect(answer.status).toBe(200);
    for (const field of [
      "id",
      "createdDateTime",
      "lastModifiedDateTime",
      "receivedDateTime",
      "sentDateTime",
      "hasAttachments",
      "internetMessageId",
      "subject",
      "bodyPreview",
      "importance",
      "parentFolderId",
      "conversationId",
      "isRead",
      "isDraft",
      "body",
      "from",
      "sender",
      "toRecipients",
      "ccRecipients",
      "bccRecipients",
      "replyTo",
      "flag",
    ]) {
      expect(answer.json).toHaveProperty(field);
    }
    expect(answer.json.receivedDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const folder = await f.call("GET", "/v1.0/me/mailFolders/inbox", { token: support });
    expect(answer.json.parentFolderId).toBe(folder.json.id);
    expect(answer.json.flag).toEqual({ flagStatus: "notFlagged" });
  });

  it("serves the MIME source at $value", async () => {
    const [first] = await inbox(support);
    const answer = await f.call("GET", `/v1.0/me/messages/${first.id}/$value`, { token: support });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^text\/plain/);
    expect(answer.text).toMatch(/^Subject: /m);
    expect(answer.text).toContain(first.internetMessageId);
  });

  it("honours Prefer: outlook.body-content-type", async () => {
    const [first] = await inbox(support);
    const answer = await f.call("GET", `/v1.0/me/messages/${first.id}`, {
      token: support,
      headers: { Prefer: 'outlook.body-content-type="html"' },
    });
    expect(answer.json.body.contentType).toBe("html");
    expect(answer.headers["preference-applied"]).toBe('outlook.body-content-type="html"');
  });

  it("PATCH isRead changes the message and its etag", async () => {
    const [first] = await inbox(support);
    const before = await f.call("GET", `/v1.0/me/messages/${first.id}`, { token: support });
    const patched = await f.call("PATCH", `/v1.0/me/messages/${first.id}`, {
      token: support,
      body: { isRead: !before.json.isRead },
    });
    expect(patched.status).toBe(200);
    expect(patched.json.isRead).toBe(!before.json.isRead);
    expect(patched.json.id).toBe(first.id);
    expect(patched.json["@odata.etag"]).not.toBe(before.json["@odata.etag"]);
  });

  it("move answers 201 with the moved message under a new id; the old id is gone", async () => {
    const [first] = await inbox(support);
    const archive = await f.call("GET", "/v1.0/me/mailFolders/archive", { token: support });
    const moved = await f.call("POST", `/v1.0/me/messages/${first.id}/move`, {
      token: support,
      body: { destinationId: "archive" },
    });
    expect(moved.status).toBe(201);
    expect(moved.json.parentFolderId).toBe(archive.json.id);
    expect(moved.json.id).not.toBe(first.id);
    expect(moved.json.subject).toBe(first.subject);
    expect((await f.call("GET", `/v1.0/me/messages/${first.id}`, { token: support })).status).toBe(404);
    const inArchive = await f.call(
      "GET",
      `/v1.0/me/mailFolders/${archive.json.id}/messages/${moved.json.id}`,
      { token: support },
    );
    expect(inArchive.status).toBe(200);
    const wrongFolder = await f.call("GET", `/v1.0/me/mailFolders/inbox/messages/${moved.json.id}`, {
      token: support,
    });
    expect(wrongFolder.status).toBe(404);
  });

  it("DELETE answers 204 and the message leaves every visible folder (a soft delete)", async () => {
    const [first] = await inbox(support);
    const answer = await f.call("DELETE", `/v1.0/me/messages/${first.id}`, { token: support });
    expect(answer.status).toBe(204);
    expect(answer.body.length).toBe(0);
    expect((await f.call("GET", `/v1.0/me/messages/${first.id}`, { token: support })).status).toBe(404);
    const all = await f.call("GET", "/v1.0/me/messages?$top=1000&$select=internetMessageId", {
      token: support,
    });
    expect(all.json.value.some((m: any) => m.internetMessageId === first.internetMessageId)).toBe(false);
    expect((await f.call("DELETE", `/v1.0/me/messages/${first.id}`, { token: support })).status).toBe(404);
  });

  it("move to deleteditems is how a message goes to Deleted Items", async () => {
    const [first] = await inbox(support);
    const moved = await f.call("POST", `/v1.0/me/messages/${first.id}/move`, {
      token: support,
      body: { destinationId: "deleteditems" },
    });
    expect(moved.status).toBe(201);
    const trash = await f.call("GET", "/v1.0/me/mailFolders/deleteditems/messages?$top=100", {
      token: support,
    });
    expect(trash.json.value.some((m: any) => m.id === moved.json.id)).toBe(true);
  });
});

describe("attachments", () => {
  let messageId: string;
  const content = Buffer.from("col1,col2\n1,2\n");

  beforeAll(async () => {
    await f.call("POST", "/v1.0/me/sendMail", {
      token: alice,
      body: mailTo(["support@contoso.com"], "With attachment", {
        attachments: [
          {
            "@odata.type": "#microsoft.graph.fileAttachment",
            name: "data.csv",
            contentType: "text/csv",
            contentBytes: content.toString("base64"),
          },
        ],
      }),
    });
    const found = (await inbox(support, "?$top=100")).find((m) => m.subject === "With attachment");
    messageId = found.id;
    expect(found.hasAttachments).toBe(true);
  });

  it("lists file attachments with contentBytes", async () => {
    const answer = await f.call("GET", `/v1.0/me/messages/${messageId}/attachments`, { token: support });
    expect(answer.status).toBe(200);
    expect(answer.json.value).toHaveLength(1);
    expect(answer.json.value[0]).toMatchObject({
      "@odata.type": "#microsoft.graph.fileAttachment",
      name: "data.csv",
      contentType: "text/csv",
      size: content.length,
      isInline: false,
      contentBytes: content.toString("base64"),
    });
    const one = await f.call("GET", `/v1.0/me/messages/${messageId}/attachments/${answer.json.value[0].id}`, {
      token: support,
    });
    expect(one.json.name).toBe("data.csv");
    const raw = await f.call(
      "GET",
      `/v1.0/me/messages/${messageId}/attachments/${answer.json.value[0].id}/$value`,
      { token: support },
    );
    expect(raw.body.equals(content)).toBe(true);
  });

  it("$expand=attachments inlines them into the message", async () => {
    const answer = await f.call("GET", `/v1.0/me/messages/${messageId}?$expand=attachments`, {
      token: support,
    });
    expect(answer.json.attachments[0].contentBytes).toBe(content.toString("base64"));
    const list = await f.call(
      "GET",
      `/v1.0/me/mailFolders/inbox/messages?$top=100&$expand=attachments&$select=subject`,
      { token: support },
    );
    const listed = list.json.value.find((m: any) => m.id === messageId);
    expect(listed.attachments).toHaveLength(1);
  });

  it("404 for an attachment id of another message", async () => {
    const answer = await f.call("GET", `/v1.0/me/messages/${messageId}/attachments/AAMkAGAbogus=`, {
      token: support,
    });
    expect(answer.status).toBe(404);
  });
});

describe("one mailbox store behind every protocol", () => {
  it("mail sent over Graph is in the Maildir the store (and Dovecot) reads, under the same id", async () => {
    const store = createMailStore({ root: f.dataDir });
    await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Seen by IMAP too"),
    });
    const listed = (await inbox(alice, "?$top=100")).find((m) => m.subject === "Seen by IMAP too");
    const stored = (await store.list("alice@contoso.com", "inbox")).map((m) => m.id);
    expect(stored).toContain(listed.id);
    const raw = (await store.read("alice@contoso.com", listed.id)).raw.toString("utf8");
    expect(raw).toContain("Subject: Seen by IMAP too");
  });

  it("mail delivered by another part, and flags changed behind Graph's back, show up over Graph and in delta", async () => {
    const store = createMailStore({ root: f.dataDir });
    const round = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages/delta?$select=subject,isRead", {
      token: alice,
      headers: { Prefer: "odata.maxpagesize=1000" },
    });
    const deltaLink = round.json["@odata.deltaLink"];
    const delivered = await store.deliver(
      "alice@contoso.com",
      "inbox",
      Buffer.from(
        "From: bob@fabrikam.example\r\nTo: alice@contoso.com\r\nSubject: Via SMTP\r\nMessage-ID: <via-smtp@fabrikam.example>\r\n\r\nHi\r\n",
      ),
    );
    const got = await f.call("GET", `/v1.0/me/messages/${delivered.id}`, { token: alice });
    expect(got.json).toMatchObject({
      subject: "Via SMTP",
      isRead: false,
      internetMessageId: "<via-smtp@fabrikam.example>",
    });
    await store.setSeen("alice@contoso.com", delivered.id, true);
    const changes = await f.call("GET", deltaLink, { token: alice });
    expect(changes.json.value).toEqual([
      expect.objectContaining({ id: delivered.id, subject: "Via SMTP", isRead: true }),
    ]);
  });
});
