import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_MAIL, type GraphFixture, startGraphFixture } from "./graph-fixtures.js";

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

async function createDraft(subject: string) {
  const answer = await f.call("POST", "/v1.0/me/messages", {
    token: support,
    body: {
      subject,
      body: { contentType: "HTML", content: "<p>See attached.</p>" },
      toRecipients: [{ emailAddress: { address: "alice@contoso.com", name: "Alice" } }],
    },
  });
  expect(answer.status).toBe(201);
  return answer.json;
}

async function putChunks(
  uploadUrl: string,
  file: Buffer,
  chunk: number,
  headers: Record<string, string> = {},
) {
  const answers = [];
  for (let start = 0; start < file.length; start += chunk) {
    const end = Math.min(start + chunk, file.length) - 1;
    answers.push(
      await f.call("PUT", uploadUrl, {
        raw: file.subarray(start, end + 1),
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `bytes ${start}-${end}/${file.length}`,
          ...headers,
        },
      }),
    );
  }
  return answers;
}

describe("drafts", () => {
  it("POST /me/messages creates a draft in Drafts (201, isDraft)", async () => {
    const draft = await createDraft("Draft one");
    const drafts = await f.call("GET", "/v1.0/me/mailFolders/drafts", { token: support });
    expect(draft).toMatchObject({ isDraft: true, subject: "Draft one", parentFolderId: drafts.json.id });
    expect(draft.body).toEqual({ contentType: "html", content: "<p>See attached.</p>" });
  });

  it("adds a small attachment (201) and keeps the draft's id; send answers 202 and delivers", async () => {
    const draft = await createDraft("Draft with small attachment");
    const added = await f.call("POST", `/v1.0/me/messages/${draft.id}/attachments`, {
      token: support,
      body: {
        "@odata.type": "#microsoft.graph.fileAttachment",
        name: "note.txt",
        contentType: "text/plain",
        contentBytes: Buffer.from("hello").toString("base64"),
      },
    });
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({
      "@odata.type": "#microsoft.graph.fileAttachment",
      name: "note.txt",
      size: 5,
    });
    const again = await f.call("GET", `/v1.0/me/messages/${draft.id}`, { token: support });
    expect(again.json.hasAttachments).toBe(true);

    const sent = await f.call("POST", `/v1.0/me/messages/${draft.id}/send`, { token: support });
    expect(sent.status).toBe(202);
    expect((await f.call("GET", `/v1.0/me/messages/${draft.id}`, { token: support })).status).toBe(404);
    const inbox = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=50", { token: alice });
    const received = inbox.json.value.find((m: any) => m.subject === "Draft with small attachment");
    expect(received).toMatchObject({ isDraft: false, hasAttachments: true });
    const sentItems = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=50", {
      token: support,
    });
    expect(sentItems.json.value.find((m: any) => m.subject === "Draft with small attachment")).toMatchObject({
      isDraft: false,
    });
  });

  it("PATCH changes a draft's subject; a received message refuses it", async () => {
    const draft = await createDraft("Before");
    const patched = await f.call("PATCH", `/v1.0/me/messages/${draft.id}`, {
      token: support,
      body: { subject: "After" },
    });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ id: draft.id, subject: "After", isDraft: true });
    await f.call("POST", "/v1.0/me/sendMail", {
      token: alice,
      body: {
        message: {
          subject: "Received",
          toRecipients: [{ emailAddress: { address: "support@contoso.com" } }],
        },
      },
    });
    const inbox = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=50", { token: support });
    const received = inbox.json.value.find((m: any) => m.subject === "Received");
    const refused = await f.call("PATCH", `/v1.0/me/messages/${received.id}`, {
      token: support,
      body: { subject: "Changed" },
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error.code).toBe("ErrorInvalidPropertyUpdateSentMessage");
  });
});

describe("upload sessions", () => {
  it("uploads a 10 MB attachment in chunks under 4 MB without Authorization; the recipient gets it byte-identical", async () => {
    const file = randomBytes(10 * 1024 * 1024);
    const draft = await createDraft("Large attachment");
    const session = await f.call("POST", `/v1.0/me/messages/${draft.id}/attachments/createUploadSession`, {
      token: support,
      body: {
        AttachmentItem: {
          attachmentType: "file",
          name: "big.bin",
          size: file.length,
          contentType: "application/octet-stream",
        },
      },
    });
    expect(session.status).toBe(201);
    expect(session.json).toMatchObject({
      nextExpectedRanges: ["0-"],
      expirationDateTime: expect.any(String),
    });
    const uploadUrl: string = session.json.uploadUrl;
    // Another host than the Graph origin, like outlook.office.com vs graph.microsoft.com.
    expect(new URL(uploadUrl).host).not.toBe(new URL(f.origin).host);
    expect(new URL(uploadUrl).hostname).toBe("localhost");

    const chunk = 3 * 1024 * 1024 + 512 * 1024; // 3.5 MiB
    const answers = await putChunks(uploadUrl, file, chunk);
    expect(answers.slice(0, -1).map((a) => a.status)).toEqual([200, 200]);
    expect(answers[0]!.json.nextExpectedRanges).toEqual([String(chunk)]);
    expect(answers.at(-1)!.status).toBe(201);
    expect(answers.at(-1)!.headers.location).toMatch(/\/Attachments\('/);

    expect((await f.call("POST", `/v1.0/me/messages/${draft.id}/send`, { token: support })).status).toBe(202);
    const inbox = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=50&$select=subject", {
      token: alice,
    });
    const received = inbox.json.value.find((m: any) => m.subject === "Large attachment");
    const attachments = await f.call("GET", `/v1.0/me/messages/${received.id}/attachments`, { token: alice });
    expect(attachments.json.value).toHaveLength(1);
    const got = Buffer.from(attachments.json.value[0].contentBytes, "base64");
    expect(got.length).toBe(file.length);
    expect(createHash("sha256").update(got).digest("hex")).toBe(
      createHash("sha256").update(file).digest("hex"),
    );
  });

  it("refuses a chunk of 4 MB or more, a gap, and a request with Authorization; accepts a range sent again", async () => {
    const file = randomBytes(9 * 1024 * 1024);
    const draft = await createDraft("Refusals");
    const session = await f.call("POST", `/v1.0/me/messages/${draft.id}/attachments/createUploadSession`, {
      token: support,
      body: { AttachmentItem: { attachmentType: "file", name: "x.bin", size: file.length } },
    });
    const url: string = session.json.uploadUrl;
    const tooBig = await f.call("PUT", url, {
      raw: file.subarray(0, 4 * 1024 * 1024 + 1),
      headers: { "Content-Range": `bytes 0-${4 * 1024 * 1024}/${file.length}` },
    });
    expect(tooBig.status).toBe(413);
    const withAuth = await f.call("PUT", url, {
      token: support,
      raw: file.subarray(0, 1024),
      headers: { "Content-Range": `bytes 0-1023/${file.length}` },
    });
    expect(withAuth.status).toBe(401);
    expect(withAuth.json.error.code).toBe("InvalidAudienceForResource");
    const outOfOrder = await f.call("PUT", url, {
      raw: file.subarray(2048, 4096),
      headers: { "Content-Range": `bytes 2048-4095/${file.length}` },
    });
    expect(outOfOrder.status).toBe(416);
    const first = await f.call("PUT", url, {
      raw: file.subarray(0, 1024),
      headers: { "Content-Range": `bytes 0-1023/${file.length}` },
    });
    expect(first.status).toBe(200);
    expect(first.json.nextExpectedRanges).toEqual(["1024"]);
    // The same range again (a retry after a lost answer) is accepted and changes nothing.
    const resent = await f.call("PUT", url, {
      raw: file.subarray(0, 1024),
      headers: { "Content-Range": `bytes 0-1023/${file.length}` },
    });
    expect(resent.status).toBe(200);
    expect(resent.json.nextExpectedRanges).toEqual(["1024"]);
    const bogus = await f.call("PUT", url.replace(/authtoken=[^&]+/, "authtoken=bogus"), {
      raw: file.subarray(1024, 2048),
      headers: { "Content-Range": `bytes 1024-2047/${file.length}` },
    });
    expect(bogus.status).toBe(404);
  });

  it("refuses an upload session under 3 MB (use a plain POST)", async () => {
    const draft = await createDraft("Small via session");
    const answer = await f.call("POST", `/v1.0/me/messages/${draft.id}/attachments/createUploadSession`, {
      token: support,
      body: { AttachmentItem: { attachmentType: "file", name: "small.txt", size: 1000 } },
    });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("ErrorAttachmentSizeShouldNotBeLessThanMinimumSize");
  });
});
