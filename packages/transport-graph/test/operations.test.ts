import { randomBytes } from "node:crypto";
import type { MailEvent } from "@m365-mail/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { graphTransport, UPLOAD_CHUNK_BYTES } from "../src/index.js";
import { type FakeGraph, fakeAuth, graphErrorReply, startFakeGraph } from "./fake-graph.js";

let graph: FakeGraph;
beforeEach(async () => {
  graph = await startFakeGraph();
});
afterEach(async () => {
  await graph.close();
});

const transport = () =>
  graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, retry: { baseDelayMs: 5 } });

describe("paging", () => {
  it("follows @odata.nextLink exactly as given and yields each message once", async () => {
    const next = `${graph.origin}/v1.0/me/mailFolders/inbox/messages?%24skiptoken=a%2Bb%3D%3D&$top=2&zeta=1&alpha=2`;
    graph.handle((r) =>
      r.url.includes("skiptoken")
        ? {
            json: {
              value: [
                { id: "m2", subject: "two" },
                { id: "m3", subject: "three" },
              ],
            },
          }
        : {
            json: {
              value: [
                { id: "m1", subject: "one" },
                { id: "m2", subject: "two" },
              ],
              "@odata.nextLink": next,
            },
          },
    );
    const ids: string[] = [];
    for await (const m of transport().listMessages({ folder: "inbox", pageSize: 2 })) ids.push(m.id);
    expect(ids).toEqual(["m1", "m2", "m3"]);
    expect(`${graph.origin}${graph.requests[1]!.url}`).toBe(next);
  });

  it("puts since, unreadOnly, limit and pageSize into the query Graph accepts", async () => {
    graph.handle(() => ({
      json: { value: [{ id: "a" }, { id: "b" }, { id: "c" }], "@odata.nextLink": `${graph.origin}/v1.0/x` },
    }));
    const ids: string[] = [];
    const since = new Date("2024-05-01T10:00:00Z");
    for await (const m of transport().listMessages({
      folder: "sent",
      unreadOnly: true,
      since,
      limit: 2,
      pageSize: 25,
    }))
      ids.push(m.id);
    expect(ids).toEqual(["a", "b"]);
    expect(graph.requests).toHaveLength(1);
    const url = new URL(graph.requests[0]!.url, graph.origin);
    expect(url.pathname).toBe("/v1.0/me/mailFolders/sentitems/messages");
    expect(url.searchParams.get("$top")).toBe("2");
    expect(url.searchParams.get("$filter")).toBe(
      "receivedDateTime ge 2024-05-01T10:00:00.000Z and isRead eq false",
    );
    expect(url.searchParams.get("$orderby")).toBe("receivedDateTime desc");
    expect(url.searchParams.get("$select")).toContain("internetMessageId");
  });
});

describe("folders", () => {
  it("lists child folders recursively with paths, in hand-built $batch requests", async () => {
    graph.handle((r) => {
      expect(r.url).toBe("/v1.0/$batch");
      const { requests } = r.json() as { requests: { id: string; url: string; method: string }[] };
      const responses = requests.map((step) => {
        expect(step.url.startsWith("/me/")).toBe(true);
        if (step.url.startsWith("/me/mailFolders?"))
          return {
            id: step.id,
            status: 200,
            body: {
              value: [
                { id: "f-inbox", displayName: "Inbox", childFolderCount: 1 },
                { id: "f-sent", displayName: "Sent Items", childFolderCount: 0 },
              ],
            },
          };
        if (step.url.startsWith("/me/mailFolders/inbox?"))
          return { id: step.id, status: 200, body: { id: "f-inbox" } };
        if (step.url.startsWith("/me/mailFolders/sentitems?"))
          return { id: step.id, status: 200, body: { id: "f-sent" } };
        if (step.url.startsWith("/me/mailFolders/f-inbox/childFolders"))
          return {
            id: step.id,
            status: 200,
            body: { value: [{ id: "f-rcpt", displayName: "Receipts", childFolderCount: 1 }] },
          };
        if (step.url.startsWith("/me/mailFolders/f-rcpt/childFolders"))
          return {
            id: step.id,
            status: 200,
            body: { value: [{ id: "f-2024", displayName: "2024", childFolderCount: 0 }] },
          };
        return {
          id: step.id,
          status: 404,
          body: { error: { code: "ErrorItemNotFound", message: "not found" } },
        };
      });
      return { json: { responses } };
    });
    const t = transport();
    const folders = await t.listFolders();
    expect(folders.map((f) => [f.path, f.specialUse])).toEqual([
      ["Inbox", "inbox"],
      ["Inbox/Receipts", undefined],
      ["Inbox/Receipts/2024", undefined],
      ["Sent Items", "sent"],
    ]);
    expect(graph.requests).toHaveLength(3);
    // A path resolves to its folder id.
    graph.handle(() => ({ json: { value: [] } }));
    await t.listMessages({ folder: "Inbox/Receipts" })[Symbol.asyncIterator]().next();
    expect(graph.requests.at(-1)!.url).toContain("/v1.0/me/mailFolders/f-rcpt/messages");
  });

  it("retries throttled $batch steps after their Retry-After", async () => {
    let round = 0;
    graph.handle((r) => {
      round++;
      const { requests } = r.json() as { requests: { id: string }[] };
      return {
        json: {
          responses: requests.map((s, i) =>
            round === 1 && i === 0
              ? {
                  id: s.id,
                  status: 429,
                  headers: { "Retry-After": "0" },
                  body: { error: { code: "ApplicationThrottled" } },
                }
              : { id: s.id, status: 204 },
          ),
        },
      };
    });
    const results = await transport().markReadMany(["a", "b", "c"], true);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(round).toBe(2);
    expect((graph.requests[1]!.json() as { requests: unknown[] }).requests).toHaveLength(1);
  });
});

describe("send", () => {
  it("sends JSON with inline and file attachments and our Message-ID", async () => {
    graph.handle(() => ({ status: 202 }));
    const result = await transport().send({
      from: "support@contoso.com",
      to: [{ name: "Zoë Ångström", address: "zoe@contoso.com" }],
      subject: "Grüße",
      html: '<p>hi <img src="cid:logo"></p>',
      headers: { "X-Ticket": "42" },
      attachments: [
        {
          filename: "logo.png",
          content: new Uint8Array([1, 2, 3]),
          contentType: "image/png",
          contentId: "logo",
        },
        { filename: "a.txt", content: "text" },
      ],
    });
    const body = graph.requests[0]!.json();
    expect(graph.requests[0]!.url).toBe("/v1.0/me/sendMail");
    expect(body.saveToSentItems).toBe(true);
    expect(body.message.internetMessageId).toBe(result.messageId);
    expect(body.message.toRecipients).toEqual([
      { emailAddress: { address: "zoe@contoso.com", name: "Zoë Ångström" } },
    ]);
    expect(body.message.internetMessageHeaders).toEqual([{ name: "X-Ticket", value: "42" }]);
    expect(body.message.attachments[0]).toMatchObject({
      name: "logo.png",
      contentId: "logo",
      isInline: true,
      contentBytes: "AQID",
    });
    expect(body.message.attachments[1]).toMatchObject({
      name: "a.txt",
      isInline: false,
      contentBytes: "dGV4dA==",
    });
    expect(result.accepted).toEqual(["zoe@contoso.com"]);
  });

  it("refuses a non-X- header (Graph would reject it)", async () => {
    const error = await transport()
      .send({ to: "a@contoso.com", subject: "s", text: "t", headers: { "List-Id": "x" } })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "MESSAGE_INVALID" });
    expect(graph.requests).toHaveLength(0);
  });

  it("refuses a sixth custom header before any request (Graph: InvalidInternetMessageHeaderCollection)", async () => {
    const headers = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`X-Tag-${i}`, String(i)]));
    const error = await transport()
      .send({ to: "a@contoso.com", subject: "s", text: "t", headers })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "MESSAGE_INVALID" });
    expect((error as Error).message).toContain("at most 5 custom headers, got 6");
    expect(graph.requests).toHaveLength(0);
  });

  it("uploads a large attachment in chunks under 4 MB without an Authorization header", async () => {
    const upload = await startFakeGraph();
    try {
      const received: Buffer[] = [];
      upload.handle((r) => {
        received.push(r.body);
        const [, , end, total] = /bytes (\d+)-(\d+)\/(\d+)/
          .exec(String(r.headers["content-range"]))!
          .map(Number);
        return end! + 1 === total ? { status: 201 } : { json: { nextExpectedRanges: [`${end! + 1}-`] } };
      });
      graph.handle((r) => {
        if (r.url === "/v1.0/me/messages") return { status: 201, json: { id: "draft1" } };
        if (r.url.endsWith("/createUploadSession"))
          return { json: { uploadUrl: `${upload.origin}/up/session1?sig=abc` } };
        if (r.url.endsWith("/attachments")) return { status: 201, json: { id: "att" } };
        if (r.url.endsWith("/send")) return { status: 202 };
        return graphErrorReply(404, "ErrorItemNotFound", "no");
      });
      const content = new Uint8Array(randomBytes(9 * 1024 * 1024 + 7));
      await transport().send({
        to: "a@contoso.com",
        subject: "big",
        text: "x",
        attachments: [
          { filename: "big.bin", content },
          { filename: "small.txt", content: "small" },
        ],
      });
      expect(upload.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
      expect(upload.requests.every((r) => r.method === "PUT")).toBe(true);
      expect(received.map((b) => b.length)).toEqual([
        UPLOAD_CHUNK_BYTES,
        UPLOAD_CHUNK_BYTES,
        content.length - 2 * UPLOAD_CHUNK_BYTES,
      ]);
      expect(Buffer.concat(received).equals(Buffer.from(content))).toBe(true);
      const session = graph.requests.find((r) => r.url.endsWith("/createUploadSession"))!.json();
      expect(session.AttachmentItem).toMatchObject({
        attachmentType: "file",
        name: "big.bin",
        size: content.length,
      });
      expect(graph.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
        "POST /v1.0/me/messages",
        "POST /v1.0/me/messages/draft1/attachments/createUploadSession",
        "POST /v1.0/me/messages/draft1/attachments",
        "POST /v1.0/me/messages/draft1/send",
      ]);
    } finally {
      await upload.close();
    }
  });

  it("deletes the draft when an upload fails, and sends nothing", async () => {
    graph.handle((r) => {
      if (r.url === "/v1.0/me/messages") return { status: 201, json: { id: "draft1" } };
      if (r.url.endsWith("/createUploadSession"))
        return graphErrorReply(403, "ErrorAccessDenied", "Access is denied.");
      return { status: 204 };
    });
    const error = await transport()
      .send({
        to: "a@contoso.com",
        subject: "big",
        text: "x",
        attachments: [{ filename: "b", content: new Uint8Array(4 * 1024 * 1024) }],
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ACCESS_DENIED" });
    expect(graph.requests.map((r) => `${r.method} ${r.url}`).at(-1)).toBe("DELETE /v1.0/me/messages/draft1");
    expect(graph.requests.some((r) => r.url.endsWith("/send"))).toBe(false);
  });

  it("sends raw MIME as base64 text/plain and adds a Message-ID when it lacks one", async () => {
    graph.handle(() => ({ status: 202 }));
    const raw =
      "From: support@contoso.com\r\nTo: a@contoso.com, B <b@contoso.com>\r\nSubject: raw\r\n\r\nbody\r\n";
    const result = await transport().send({ raw });
    const request = graph.requests[0]!;
    expect(request.headers["content-type"]).toBe("text/plain");
    const decoded = Buffer.from(request.body.toString(), "base64").toString();
    expect(decoded).toBe(`Message-ID: ${result.messageId}\r\n${raw}`);
    expect(result.accepted).toEqual(["a@contoso.com", "b@contoso.com"]);
  });
});

describe("delta", () => {
  it("reports created, updated and deleted, and resumes from its state", async () => {
    const t0 = Date.parse("2024-05-01T10:00:00Z");
    let round = 0;
    graph.handle((r) => {
      const date = new Date(t0 + round * 60_000).toUTCString();
      if (!r.url.includes("deltatoken")) {
        round = 1;
        return {
          headers: { date },
          json: {
            value: [{ id: "old", subject: "old", createdDateTime: "2024-04-01T00:00:00Z" }],
            "@odata.deltaLink": `${graph.origin}/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=t1`,
          },
        };
      }
      return {
        headers: { date },
        json: {
          value: [
            { id: "old", subject: "old (read)", createdDateTime: "2024-04-01T00:00:00Z", isRead: true },
            { id: "new", subject: "new", createdDateTime: "2024-05-01T10:00:30Z" },
            { id: "gone", "@removed": { reason: "deleted" } },
          ],
          "@odata.deltaLink": `${graph.origin}/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=t2`,
        },
      };
    });
    const t = transport();
    const first = await t.delta({ folder: "inbox" });
    expect(first.changes.map((c) => c.type)).toEqual(["created"]);
    const second = await t.delta({ state: first.state });
    const summary = (e: MailEvent) =>
      e.type === "deleted" ? `deleted ${e.id}` : `${e.type} ${e.message.id}`;
    expect(second.changes.map(summary)).toEqual(["updated old", "created new", "deleted gone"]);
    expect(graph.requests[1]!.url).toBe("/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=t1");
    expect(graph.requests[0]!.headers.prefer).toBe("odata.maxpagesize=100");
  });

  it("refuses a state it did not produce", async () => {
    await expect(transport().delta({ state: "nonsense" })).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });
});

describe("calendar", () => {
  it("lists calendarView pages in UTC", async () => {
    graph.handle((r) =>
      r.url.includes("page2")
        ? {
            json: {
              value: [
                {
                  id: "e2",
                  subject: "two",
                  start: { dateTime: "2024-05-02T08:00:00.0000000", timeZone: "UTC" },
                  end: { dateTime: "2024-05-02T09:00:00.0000000", timeZone: "UTC" },
                },
              ],
            },
          }
        : {
            json: {
              value: [
                {
                  id: "e1",
                  subject: "one",
                  isAllDay: false,
                  location: { displayName: "Teams" },
                  organizer: { emailAddress: { address: "a@contoso.com", name: "A" } },
                  attendees: [{ emailAddress: { address: "b@contoso.com" } }],
                  start: { dateTime: "2024-05-01T08:00:00.0000000", timeZone: "UTC" },
                  end: { dateTime: "2024-05-01T08:30:00.0000000", timeZone: "UTC" },
                },
              ],
              "@odata.nextLink": `${graph.origin}/v1.0/me/calendarView?page2=1`,
            },
          },
    );
    const events = [];
    for await (const e of transport().listEvents({
      start: new Date("2024-05-01T00:00:00Z"),
      end: new Date("2024-05-08T00:00:00Z"),
    }))
      events.push(e);
    expect(events.map((e) => [e.id, e.start.toISOString(), e.location])).toEqual([
      ["e1", "2024-05-01T08:00:00.000Z", "Teams"],
      ["e2", "2024-05-02T08:00:00.000Z", undefined],
    ]);
    expect(events[0]!.attendees).toEqual([{ address: "b@contoso.com" }]);
    expect(graph.requests.every((r) => r.headers.prefer === 'outlook.timezone="UTC"')).toBe(true);
    const url = new URL(graph.requests[0]!.url, graph.origin);
    expect(url.searchParams.get("startDateTime")).toBe("2024-05-01T00:00:00.000Z");
  });
});
