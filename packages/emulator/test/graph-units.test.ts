import { describe, expect, it } from "vitest";
import { splitPath } from "../src/graph/graph-service.js";
import { nextLinkWithSkip, parseMessageFilter, parseMessageOrderBy, parseTop } from "../src/graph/odata.js";
import { GraphThrottle } from "../src/graph/throttle.js";

const q = (text: string) => new URLSearchParams(text);

describe("OData options", () => {
  it("parses the supported $filter subset, joined by and", () => {
    expect(parseMessageFilter(q("$filter=isRead eq false"))).toEqual({
      isRead: false,
      properties: ["isRead"],
    });
    expect(
      parseMessageFilter(q("$filter=receivedDateTime+ge+2025-01-02T03:04:05Z+and+isRead+eq+true")),
    ).toEqual({
      receivedAfter: { time: Date.parse("2025-01-02T03:04:05Z"), inclusive: true },
      isRead: true,
      properties: ["receivedDateTime", "isRead"],
    });
    expect(parseMessageFilter(q("$filter=internetMessageId eq '<a''b@x>'"))?.internetMessageId).toBe(
      "<a'b@x>",
    );
    // Without an offset the time is UTC, whatever the machine's zone.
    expect(parseMessageFilter(q("$filter=receivedDateTime gt 2025-01-02T03:04:05"))?.receivedAfter).toEqual({
      time: Date.parse("2025-01-02T03:04:05Z"),
      inclusive: false,
    });
    expect(parseMessageFilter(q(""))).toBeUndefined();
  });

  it("refuses what it does not support instead of ignoring it", () => {
    expect(() => parseMessageFilter(q("$filter=subject eq 'x'"))).toThrow(/invalid nodes/);
    expect(() => parseMessageFilter(q("$filter=receivedDateTime ge yesterday"))).toThrow();
    expect(() => parseMessageOrderBy(q("$orderby=subject"))).toThrow(
      /Could not find a property named 'subject'/,
    );
    expect(() => parseTop(q("$top=ten"), 10)).toThrow(/\$top/);
  });

  it("orders newest first by default", () => {
    expect(parseMessageOrderBy(q(""))).toEqual({ property: "receivedDateTime", descending: true });
    expect(parseMessageOrderBy(q("$orderby=receivedDateTime asc"))).toEqual({
      property: "receivedDateTime",
      descending: false,
    });
  });

  it("builds absolute next links that keep the options and replace $skip", () => {
    const link = nextLinkWithSkip(
      "https://127.0.0.1:1",
      "/me/messages",
      q("$top=5&$skip=5&$select=subject,isRead"),
      10,
    );
    expect(link).toBe("https://127.0.0.1:1/v1.0/me/messages?$top=5&$select=subject,isRead&$skip=10");
    const back = new URL(link);
    expect(back.searchParams.get("$select")).toBe("subject,isRead");
  });

  it("splits paths with OData key syntax and encoded segments", () => {
    expect(splitPath("/me/mailFolders('AAMk%3D')/messages")).toEqual([
      "me",
      "mailFolders",
      "AAMk=",
      "messages",
    ]);
    expect(splitPath("/users/shared%40contoso.com/messages/")).toEqual([
      "users",
      "shared@contoso.com",
      "messages",
    ]);
  });
});

describe("Outlook throttling buckets", () => {
  it("counts concurrency per app + mailbox and frees slots on release", () => {
    const throttle = new GraphThrottle({ concurrency: 2 });
    const a = throttle.acquire("app|m1", 0);
    throttle.acquire("app|m1", 0);
    expect(() => throttle.acquire("app|m1", 0)).toThrow(/MailboxConcurrency/);
    expect(() => throttle.acquire("app|m2", 0)).not.toThrow();
    a();
    a(); // releasing twice frees one slot only
    expect(() => throttle.acquire("app|m1", 0)).not.toThrow();
    expect(() => throttle.acquire("app|m1", 0)).toThrow(/MailboxConcurrency/);
  });

  it("enforces the budget per window and says how long to wait", () => {
    const throttle = new GraphThrottle({ requestsPerWindow: 2, windowSeconds: 60 });
    throttle.acquire("k", 0)();
    throttle.acquire("k", 1000)();
    try {
      throttle.acquire("k", 20_000);
      expect.unreachable();
    } catch (error: any) {
      expect(error.status).toBe(429);
      expect(error.code).toBe("ApplicationThrottled");
      expect(error.headers["Retry-After"]).toBe("40");
    }
    // A new window starts after windowSeconds.
    expect(() => throttle.acquire("k", 60_000)).not.toThrow();
  });

  it("refuses nonsense limits", () => {
    expect(() => new GraphThrottle({ concurrency: 0 })).toThrow(RangeError);
    expect(() => new GraphThrottle().setLimits({ windowSeconds: Number.NaN })).toThrow(RangeError);
  });
});
