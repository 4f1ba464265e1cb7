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

async function send(subject: string) {
  const answer = await f.call("POST", "/v1.0/me/sendMail", {
    token: alice,
    body: mailTo(["support@contoso.com"], subject),
  });
  expect(answer.status).toBe(202);
}

/** Follows nextLinks to the end of a delta round; returns every item and the deltaLink. */
async function deltaRound(url: string, pageSize: number) {
  const items: any[] = [];
  let next: string | undefined = url;
  let deltaLink: string | undefined;
  let pages = 0;
  while (next) {
    const answer = await f.call("GET", next, {
      token: support,
      headers: { Prefer: `odata.maxpagesize=${pageSize}` },
    });
    expect(answer.status).toBe(200);
    expect(answer.json.value.length).toBeLessThanOrEqual(pageSize);
    items.push(...answer.json.value);
    next = answer.json["@odata.nextLink"];
    deltaLink = answer.json["@odata.deltaLink"];
    if (next) expect(next).toContain("$skiptoken=");
    pages++;
  }
  return { items, deltaLink: deltaLink!, pages };
}

describe("delta on a folder", () => {
  it("first round returns every message across pages, then only the changes with @removed", async () => {
    for (let i = 0; i < 5; i++) await send(`Delta ${i}`);
    const first = await deltaRound(
      `${f.origin}/v1.0/me/mailFolders/inbox/messages/delta?$select=subject,isRead`,
      2,
    );
    expect(first.pages).toBe(3);
    expect(first.items.map((m) => m.subject).sort()).toEqual([
      "Delta 0",
      "Delta 1",
      "Delta 2",
      "Delta 3",
      "Delta 4",
    ]);
    for (const item of first.items)
      expect(Object.keys(item).sort()).toEqual(["@odata.etag", "@odata.type", "id", "isRead", "subject"]);
    expect(first.deltaLink).toMatch(
      new RegExp(
        `^${f.origin.replace(/\./g, "\\.")}/v1\\.0/me/mailFolders\\('[^']+'\\)/messages/delta\\?\\$deltatoken=`,
      ),
    );

    // Nothing changed: an empty page and a deltaLink.
    const quiet = await deltaRound(first.deltaLink, 2);
    expect(quiet.items).toEqual([]);

    const [gone, read] = first.items;
    expect((await f.call("DELETE", `/v1.0/me/messages/${gone.id}`, { token: support })).status).toBe(204);
    expect(
      (await f.call("PATCH", `/v1.0/me/messages/${read.id}`, { token: support, body: { isRead: true } }))
        .status,
    ).toBe(200);
    await send("Delta new");

    const second = await deltaRound(quiet.deltaLink, 10);
    const removed = second.items.filter((item) => item["@removed"]);
    expect(removed).toEqual([
      { "@odata.type": "#microsoft.graph.message", id: gone.id, "@removed": { reason: "deleted" } },
    ]);
    const updated = second.items.find((item) => item.id === read.id);
    expect(updated).toMatchObject({ isRead: true, subject: read.subject });
    expect(second.items.some((item) => item.subject === "Delta new")).toBe(true);
    expect(second.items).toHaveLength(3);
  });

  it("an unknown delta token answers 410", async () => {
    const answer = await f.call("GET", "/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=nope", {
      token: support,
    });
    expect(answer.status).toBe(410);
    expect(answer.json.error.code).toBe("SyncStateNotFound");
  });
});

describe("$batch", () => {
  const batch = (requests: unknown[]) =>
    f.call("POST", "/v1.0/$batch", { token: support, body: { requests } });

  it("runs steps with relative URLs and answers each with id, status, headers and body", async () => {
    const answer = await batch([
      { id: "1", method: "GET", url: "/me" },
      { id: "2", method: "GET", url: "/me/mailFolders/inbox" },
      { id: "3", method: "GET", url: "me/messages/AAMkAGmissing" },
    ]);
    expect(answer.status).toBe(200);
    const byId = Object.fromEntries(answer.json.responses.map((r: any) => [r.id, r]));
    expect(byId["1"]).toMatchObject({ status: 200, body: { userPrincipalName: "support@contoso.com" } });
    expect(byId["1"].headers["Content-Type"]).toMatch(/^application\/json/);
    expect(byId["2"]).toMatchObject({ status: 200, body: { displayName: "Inbox" } });
    expect(byId["3"]).toMatchObject({ status: 404, body: { error: { code: "ErrorItemNotFound" } } });
  });

  it("rejects 21 requests with 400", async () => {
    const answer = await batch(
      Array.from({ length: 21 }, (_, i) => ({ id: String(i + 1), method: "GET", url: "/me" })),
    );
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("BadRequest");
    const twenty = await batch(
      Array.from({ length: 20 }, (_, i) => ({ id: String(i + 1), method: "GET", url: "/me" })),
    );
    expect(twenty.status).toBe(200);
    expect(twenty.json.responses).toHaveLength(20);
  });

  it("rejects a step URL with the /v1.0 prefix as Graph does", async () => {
    const answer = await batch([{ id: "1", method: "GET", url: "/v1.0/me" }]);
    expect(answer.status).toBe(200);
    expect(answer.json.responses[0]).toMatchObject({
      status: 400,
      body: { error: { code: "BadRequest", message: "Resource not found for the segment 'v1.0'." } },
    });
  });

  it("rejects absolute step URLs and duplicate ids as a malformed batch", async () => {
    expect((await batch([{ id: "1", method: "GET", url: `${f.origin}/v1.0/me` }])).status).toBe(400);
    expect(
      (
        await batch([
          { id: "1", method: "GET", url: "/me" },
          { id: "1", method: "GET", url: "/me" },
        ])
      ).status,
    ).toBe(400);
  });

  it("dependsOn orders steps; a step whose dependency failed gets 424", async () => {
    const answer = await batch([
      {
        id: "send",
        method: "POST",
        url: "/me/sendMail",
        headers: { "Content-Type": "application/json" },
        body: mailTo(["alice@contoso.com"], "Batched send"),
      },
      {
        id: "list",
        dependsOn: ["send"],
        method: "GET",
        url: "/me/mailFolders/sentitems/messages?$top=50&$select=subject",
      },
      { id: "bad", method: "GET", url: "/me/messages/AAMkAGmissing" },
      { id: "after-bad", dependsOn: ["bad"], method: "GET", url: "/me" },
      { id: "after-after-bad", dependsOn: ["after-bad"], method: "GET", url: "/me" },
    ]);
    expect(answer.status).toBe(200);
    const byId = Object.fromEntries(answer.json.responses.map((r: any) => [r.id, r]));
    expect(byId.send.status).toBe(202);
    expect(byId.list.status).toBe(200);
    expect(byId.list.body.value.some((m: any) => m.subject === "Batched send")).toBe(true);
    expect(byId.bad.status).toBe(404);
    expect(byId["after-bad"].status).toBe(424);
    expect(byId["after-after-bad"].status).toBe(424);
  });

  it("runs at most 4 steps of one mailbox at once, so 8 delayed steps do not throttle each other", async () => {
    f.graph.resetThrottling();
    f.emulator.admin.armFault({
      target: "graph",
      path: "/v1.0/me/mailFolders/inbox",
      kind: "delay",
      delayMs: 150,
      times: 8,
    });
    const answer = await batch(
      Array.from({ length: 8 }, (_, i) => ({ id: `s${i}`, method: "GET", url: "/me/mailFolders/inbox" })),
    );
    expect(answer.json.responses.map((r: any) => r.status)).toEqual(Array(8).fill(200));
    const [usage] = Object.values(f.graph.throttlingUsage());
    expect(usage).toMatchObject({ used: 8, inFlight: 0 });
    expect(usage!.peak).toBeLessThanOrEqual(4);
    expect(usage!.peak).toBeGreaterThan(1);
  });
});
