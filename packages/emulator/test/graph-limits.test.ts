import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ALL_MAIL, type GraphFixture, mailTo, startGraphFixture } from "./graph-fixtures.js";
import { httpsRequest } from "./helpers.js";

let f: GraphFixture;
let support: string;

beforeAll(async () => {
  f = await startGraphFixture();
  support = await f.token(ALL_MAIL);
});
afterAll(async () => {
  await f.cleanup();
});
afterEach(() => {
  f.emulator.admin.clearFaults();
  f.graph.setLimits({ concurrency: 4, requestsPerWindow: 10_000, windowSeconds: 600 });
  f.graph.resetThrottling();
});

describe("Outlook throttling per app and mailbox", () => {
  it("the 5th concurrent request gets 429 ApplicationThrottled MailboxConcurrency with Retry-After", async () => {
    f.emulator.admin.armFault({
      target: "graph",
      path: "/v1.0/me/mailFolders",
      kind: "delay",
      delayMs: 1500,
      times: 4,
    });
    const slow = Array.from({ length: 4 }, () => f.call("GET", "/v1.0/me/mailFolders", { token: support }));
    // Wait until the four hold their slots, then the fifth arrives.
    for (let i = 0; i < 100 && (Object.values(f.graph.throttlingUsage())[0]?.inFlight ?? 0) < 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const fifth = await f.call("GET", "/v1.0/me/messages", { token: support });
    expect(fifth.status).toBe(429);
    expect(fifth.headers["retry-after"]).toMatch(/^\d+$/);
    expect(String(fifth.headers["content-type"])).toMatch(/^application\/json/);
    expect(fifth.json.error).toMatchObject({
      code: "ApplicationThrottled",
      message: "Application is over its MailboxConcurrency limit.",
    });
    expect((await Promise.all(slow)).map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(f.emulator.admin.counts()["graph.429"]).toBeGreaterThanOrEqual(1);
  });

  it("another mailbox is not affected by one mailbox's concurrency", async () => {
    f.graph.setLimits({ concurrency: 1 });
    f.emulator.admin.armFault({
      target: "graph",
      path: "/v1.0/me/mailFolders",
      kind: "delay",
      delayMs: 1500,
    });
    const slow = f.call("GET", "/v1.0/me/mailFolders", { token: support });
    for (let i = 0; i < 100 && (Object.values(f.graph.throttlingUsage())[0]?.inFlight ?? 0) < 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const alice = await f.token(ALL_MAIL, "alice@contoso.com");
    expect((await f.call("GET", "/v1.0/me/messages", { token: alice })).status).toBe(200);
    expect((await f.call("GET", "/v1.0/me/messages", { token: support })).status).toBe(429);
    expect((await slow).status).toBe(200);
  });

  it("the request budget per window answers 429 'over its request limit' with Retry-After", async () => {
    f.graph.setLimits({ requestsPerWindow: 3, windowSeconds: 120 });
    for (let i = 0; i < 3; i++)
      expect((await f.call("GET", "/v1.0/me/messages", { token: support })).status).toBe(200);
    const over = await f.call("GET", "/v1.0/me/messages", { token: support });
    expect(over.status).toBe(429);
    expect(over.json.error.code).toBe("ApplicationThrottled");
    expect(over.json.error.message).toMatch(/over its request limit/);
    expect(Number(over.headers["retry-after"])).toBeGreaterThan(60);
    expect(Number(over.headers["retry-after"])).toBeLessThanOrEqual(120);
  });

  it("limits are settable over the admin API", async () => {
    const answer = await httpsRequest(f.emulator, `${f.emulator.authorityHost}/_admin/graph/limits`, {
      method: "POST",
      body: JSON.stringify({ requestsPerWindow: 1 }),
      headers: { "content-type": "application/json" },
    });
    expect(answer.status).toBe(200);
    expect(answer.json.limits).toMatchObject({ concurrency: 4, requestsPerWindow: 1, windowSeconds: 600 });
    expect((await f.call("GET", "/v1.0/me/messages", { token: support })).status).toBe(200);
    expect((await f.call("GET", "/v1.0/me/messages", { token: support })).status).toBe(429);
    const bad = await httpsRequest(f.emulator, `${f.emulator.authorityHost}/_admin/graph/limits`, {
      method: "POST",
      body: JSON.stringify({ concurrency: 0 }),
      headers: { "content-type": "application/json" },
    });
    expect(bad.status).toBe(400);
  });
});

describe("faults", () => {
  it("status504 with after: the message is delivered once, the client sees 504", async () => {
    f.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", after: true });
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Sent despite 504"),
    });
    expect(answer.status).toBe(504);
    expect(String(answer.headers["content-type"])).toMatch(/^application\/json/);
    const sent = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=50&$select=subject", {
      token: support,
    });
    expect(sent.json.value.filter((m: any) => m.subject === "Sent despite 504")).toHaveLength(1);
  });

  it("status429 before processing: nothing is sent", async () => {
    f.emulator.admin.armFault({
      target: "graph",
      path: "/sendMail",
      kind: "status429",
      retryAfterSeconds: 3,
    });
    const answer = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["alice@contoso.com"], "Never sent"),
    });
    expect(answer.status).toBe(429);
    expect(answer.headers["retry-after"]).toBe("3");
    const sent = await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=50&$select=subject", {
      token: support,
    });
    expect(sent.json.value.some((m: any) => m.subject === "Never sent")).toBe(false);
  });

  it("malformedJson answers a body that is not JSON; reset drops the connection", async () => {
    f.emulator.admin.armFault({ target: "graph", path: "/v1.0/me", kind: "malformedJson" });
    const broken = await f.call("GET", "/v1.0/me", { token: support });
    expect(broken.status).toBe(200);
    expect(broken.json).toBeUndefined();
    f.emulator.admin.armFault({ target: "graph", path: "/v1.0/me", kind: "reset" });
    await expect(f.call("GET", "/v1.0/me", { token: support })).rejects.toThrow();
    expect((await f.call("GET", "/v1.0/me", { token: support })).status).toBe(200);
  });
});

describe("shared mailbox via /users/{id}", () => {
  it("a delegate with Mail.Read.Shared reads it; without the permission: 403", async () => {
    await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(["shared@contoso.com"], "For the team"),
    });
    const withShared = await f.limitedToken(["User.Read", "Mail.Read", "Mail.Read.Shared"]);
    const answer = await f.call("GET", "/v1.0/users/shared@contoso.com/mailFolders/inbox/messages", {
      token: withShared,
    });
    expect(answer.status).toBe(200);
    expect(answer.json.value.some((m: any) => m.subject === "For the team")).toBe(true);
    expect(answer.json["@odata.context"]).toContain("users('shared%40contoso.com')");

    const without = await f.limitedToken(["User.Read", "Mail.Read"]);
    const denied = await f.call("GET", "/v1.0/users/shared@contoso.com/messages", { token: without });
    expect(denied.status).toBe(403);
    expect(denied.json.error.code).toBe("ErrorAccessDenied");
    expect(denied.headers["x-emulator-required-permission"]).toBe("Mail.Read.Shared");
  });

  it("a user who is not a delegate gets 403 even with Mail.Read.Shared", async () => {
    const alice = await f.limitedToken(["User.Read", "Mail.Read.Shared"], "alice@contoso.com");
    const denied = await f.call("GET", "/v1.0/users/shared@contoso.com/messages", { token: alice });
    expect(denied.status).toBe(403);
    expect(denied.headers["x-emulator-required-permission"]).toBe("FullAccess");
  });

  it("sending as the shared mailbox needs Mail.Send.Shared; the copy lands in its Sent Items", async () => {
    const noSend = await f.limitedToken(["User.Read", "Mail.Send"]);
    const denied = await f.call("POST", "/v1.0/users/shared@contoso.com/sendMail", {
      token: noSend,
      body: mailTo(["alice@contoso.com"], "From shared"),
    });
    expect(denied.status).toBe(403);
    expect(denied.headers["x-emulator-required-permission"]).toBe("Mail.Send.Shared");
    const send = await f.limitedToken(["User.Read", "Mail.Send.Shared", "Mail.Read.Shared"]);
    const ok = await f.call("POST", "/v1.0/users/shared@contoso.com/sendMail", {
      token: send,
      body: mailTo(["alice@contoso.com"], "From shared"),
    });
    expect(ok.status).toBe(202);
    const sent = await f.call("GET", "/v1.0/users/shared@contoso.com/mailFolders/sentitems/messages", {
      token: send,
    });
    expect(sent.json.value.find((m: any) => m.subject === "From shared")).toMatchObject({
      from: { emailAddress: { address: "shared@contoso.com" } },
    });
  });

  it("the signed-in user can address its own mailbox by UPN or object id", async () => {
    const me = await f.call("GET", "/v1.0/me", { token: support });
    for (const key of ["support@contoso.com", me.json.id]) {
      const answer = await f.call("GET", `/v1.0/users/${key}/mailFolders/inbox`, { token: support });
      expect(answer.status).toBe(200);
    }
  });
});

describe("calendarView", () => {
  it("lists the directory's events in the window with Graph's event shape", async () => {
    const start = new Date(Date.now() - 2 * 86_400_000).toISOString();
    const end = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const answer = await f.call("GET", `/v1.0/me/calendarView?startDateTime=${start}&endDateTime=${end}`, {
      token: support,
    });
    expect(answer.status).toBe(200);
    expect(answer.json.value.length).toBeGreaterThan(1);
    const event = answer.json.value.find((e: any) => e.subject === "Customer call: Fabrikam escalation");
    expect(event).toMatchObject({
      start: {
        dateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.0000000$/),
        timeZone: "UTC",
      },
      end: { timeZone: "UTC" },
      isAllDay: false,
      location: { displayName: "Microsoft Teams Meeting" },
      attendees: [{ type: "required", emailAddress: { address: "alice@contoso.com" } }],
      organizer: { emailAddress: { address: "support@contoso.com" } },
    });
    const starts = answer.json.value.map((e: any) => e.start.dateTime);
    expect([...starts].sort()).toEqual(starts);
  });

  it("pages with $top and nextLink", async () => {
    const start = new Date(Date.now() - 30 * 86_400_000).toISOString();
    const end = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const all = await f.call(
      "GET",
      `/v1.0/me/calendarView?startDateTime=${start}&endDateTime=${end}&$top=100`,
      { token: support },
    );
    const ids: string[] = [];
    let url: string | undefined =
      `${f.origin}/v1.0/me/calendarView?startDateTime=${start}&endDateTime=${end}&$top=1`;
    while (url) {
      const page = await f.call("GET", url, { token: support });
      ids.push(...page.json.value.map((e: any) => e.id));
      url = page.json["@odata.nextLink"];
    }
    expect(ids).toEqual(all.json.value.map((e: any) => e.id));
  });

  it("applies $select and says it answered in UTC", async () => {
    const start = new Date(Date.now() - 2 * 86_400_000).toISOString();
    const end = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const answer = await f.call(
      "GET",
      `/v1.0/me/calendarView?startDateTime=${start}&endDateTime=${end}&$select=subject,start`,
      {
        token: support,
        headers: { Prefer: 'outlook.timezone="UTC"' },
      },
    );
    expect(answer.headers["preference-applied"]).toBe('outlook.timezone="UTC"');
    for (const event of answer.json.value)
      expect(Object.keys(event).sort()).toEqual(["@odata.etag", "id", "start", "subject"]);
  });

  it("needs both startDateTime and endDateTime", async () => {
    const answer = await f.call("GET", "/v1.0/me/calendarView?startDateTime=2025-01-01T00:00:00Z", {
      token: support,
    });
    expect(answer.status).toBe(400);
    expect(answer.json.error.code).toBe("ErrorInvalidParameter");
  });
});

describe("the daily recipient limit over Graph", () => {
  it("refuses a send past it with 429 ErrorSubmissionQuotaExceeded, whole, until the window frees up", async () => {
    // m365-facts.md: 10,000 recipients a day per mailbox, SMTP and Graph together; shortened to 3 in 1 s.
    f.emulator.admin.updatePartSettings("graph", { recipientsPerDay: 3, recipientWindowMs: 1000 });
    // Earlier tests' recipients leave the window first.
    await new Promise((resolve) => setTimeout(resolve, 1050));
    const sentItems = async () =>
      (await f.call("GET", "/v1.0/me/mailFolders/sentitems/messages?$top=200", { token: support })).json.value
        .length as number;
    const aliceInbox = async () =>
      (
        await f.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=200", {
          token: await f.token(ALL_MAIL, "alice@contoso.com"),
        })
      ).json.value.length as number;
    const sentBefore = await sentItems();
    const inboxBefore = await aliceInbox();
    const two = ["alice@contoso.com", "shared@contoso.com"];
    expect(
      (await f.call("POST", "/v1.0/me/sendMail", { token: support, body: mailTo(two, "Quota 1") })).status,
    ).toBe(202);

    const refused = await f.call("POST", "/v1.0/me/sendMail", {
      token: support,
      body: mailTo(two, "Quota 2"),
    });
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("ErrorSubmissionQuotaExceeded");
    // Not throttling that lifts in seconds: no Retry-After to wait out.
    expect(refused.headers["retry-after"]).toBeUndefined();
    // A draft whose recipients do not fit stays a draft.
    const draft = await f.call("POST", "/v1.0/me/messages", {
      token: support,
      body: mailTo(two, "Quota draft").message,
    });
    expect((await f.call("POST", `/v1.0/me/messages/${draft.json.id}/send`, { token: support })).status).toBe(
      429,
    );
    expect((await f.call("GET", `/v1.0/me/messages/${draft.json.id}`, { token: support })).json.isDraft).toBe(
      true,
    );

    // One more recipient still fits; nothing of the refused ones was delivered or filed.
    expect(
      (
        await f.call("POST", "/v1.0/me/sendMail", {
          token: support,
          body: mailTo(["alice@contoso.com"], "Quota 3"),
        })
      ).status,
    ).toBe(202);
    expect(await sentItems()).toBe(sentBefore + 2);
    expect(await aliceInbox()).toBe(inboxBefore + 2);
    expect(f.emulator.admin.counts()["graph.rejected.quota"]).toBe(2);

    await new Promise((resolve) => setTimeout(resolve, 1050));
    expect((await f.call("POST", `/v1.0/me/messages/${draft.json.id}/send`, { token: support })).status).toBe(
      202,
    );
    // The limit is the mailbox's, whichever way it sends: the settings show it on Graph (and on SMTP).
    expect(f.emulator.admin.partSettings("graph").sendingQuota).toEqual({
      recipientsPerDay: 3,
      recipientWindowMs: 1000,
    });
    expect(() => f.emulator.admin.updatePartSettings("graph", { recipientsPerDay: -1 })).toThrow(
      /recipientsPerDay/,
    );
    f.emulator.admin.updatePartSettings("graph", { recipientsPerDay: 10_000, recipientWindowMs: 86_400_000 });
  });
});
