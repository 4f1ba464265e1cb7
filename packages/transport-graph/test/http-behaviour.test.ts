import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { isM365MailError, M365MailError } from "@m365-mail/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { graphTransport } from "../src/index.js";
import { type FakeGraph, fakeAuth, fakeJwt, graphErrorReply, startFakeGraph } from "./fake-graph.js";

let graph: FakeGraph;
beforeEach(async () => {
  graph = await startFakeGraph();
});
afterEach(async () => {
  await graph.close();
});

async function failure(promise: Promise<unknown>): Promise<M365MailError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof M365MailError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

describe("tokens", () => {
  it("asks the token provider for a Graph token and sends it as a Bearer header", async () => {
    const auth = fakeAuth();
    graph.handle(() => ({ json: { value: [] } }));
    const t = graphTransport({ auth, baseUrl: graph.origin });
    await t.listMessages({ folder: "inbox" })[Symbol.asyncIterator]().next();
    const token = (await auth.getAccessToken("graph")).token;
    expect(graph.requests[0]?.headers.authorization).toBe(`Bearer ${token}`);
    await t.close();
  });

  it("after a 401 forces one refresh and retries once", async () => {
    const stale = fakeJwt({ aud: "https://graph.microsoft.com", n: 1 });
    const fresh = fakeJwt({ aud: "https://graph.microsoft.com", n: 2 });
    const auth = fakeAuth({ tokens: [stale, fresh] });
    graph.handle((r) =>
      r.headers.authorization === `Bearer ${fresh}`
        ? { status: 200, json: { id: "m1", isRead: true } }
        : graphErrorReply(401, "InvalidAuthenticationToken", "Access token has expired."),
    );
    const t = graphTransport({ auth, baseUrl: graph.origin });
    await t.markRead("m1", true);
    expect(auth.calls.filter((c) => c.forceRefresh)).toHaveLength(1);
    expect(graph.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${stale}`,
      `Bearer ${fresh}`,
    ]);
  });

  it("a 401 that survives the refresh is AUTH_FAILED", async () => {
    const auth = fakeAuth();
    graph.handle(() =>
      graphErrorReply(401, "InvalidAuthenticationToken", "Access token validation failure."),
    );
    const t = graphTransport({ auth, baseUrl: graph.origin });
    const error = await failure(t.markRead("m1", true));
    expect(error.code).toBe("AUTH_FAILED");
    expect(graph.requests).toHaveLength(2);
  });

  it("an Outlook token used on Graph is WRONG_SCOPE and names the Graph scope prefix", async () => {
    const auth = fakeAuth({ aud: "https://outlook.office.com", scp: "IMAP.AccessAsUser.All" });
    graph.handle(() => graphErrorReply(401, "InvalidAuthenticationToken", "Invalid audience."));
    const t = graphTransport({ auth, baseUrl: graph.origin });
    const error = await failure(t.getMessage("m1"));
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.hint).toContain("https://graph.microsoft.com/Mail.Read");
    expect(error.message).toContain("https://outlook.office.com");
  });

  it("never sends the token to another host", async () => {
    const other = await startFakeGraph(() => ({ json: { value: [] } }));
    try {
      graph.handle(() => ({ json: { value: [], "@odata.nextLink": `${other.origin}/v1.0/me/next` } }));
      const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin });
      for await (const _ of t.listMessages({ folder: "inbox" })) {
        // drain
      }
      expect(other.requests).toHaveLength(1);
      expect(other.requests[0]?.headers.authorization).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});

describe("throttling and retries", () => {
  it("waits for Retry-After after a 429, then succeeds", async () => {
    let n = 0;
    graph.handle(() =>
      n++ === 0
        ? graphErrorReply(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", {
            "retry-after": "1",
          })
        : { json: { id: "m1", isRead: true } },
    );
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin });
    await t.markRead("m1", true);
    expect(graph.requests).toHaveLength(2);
    const [first, second] = graph.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it("a lasting 503 ends in a retryable THROTTLED within the configured wait", async () => {
    graph.handle(() =>
      graphErrorReply(503, "ServiceUnavailable", "Service unavailable", { "retry-after": "1" }),
    );
    const t = graphTransport({
      auth: fakeAuth(),
      baseUrl: graph.origin,
      retry: { attempts: 10, maxWaitMs: 2500 },
    });
    const started = Date.now();
    const error = await failure(t.markRead("m1", true));
    expect(error.code).toBe("THROTTLED");
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(1);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(graph.requests.length).toBe(3);
  });

  it("a Retry-After longer than maxDelayMs is not waited out", async () => {
    graph.handle(() => graphErrorReply(429, "ApplicationThrottled", "busy", { "retry-after": "120" }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, retry: { maxDelayMs: 5000 } });
    const error = await failure(t.markRead("m1", true));
    expect(error.code).toBe("THROTTLED");
    expect(error.retryAfterSeconds).toBe(120);
    expect(graph.requests).toHaveLength(1);
  });

  it("retries a GET after a 504 but never a sendMail POST", async () => {
    let gets = 0;
    graph.handle((r) => {
      if (r.method === "GET")
        return gets++ === 0 ? graphErrorReply(504, "GatewayTimeout", "") : { json: { value: [] } };
      return graphErrorReply(504, "GatewayTimeout", "");
    });
    const t = graphTransport({
      auth: fakeAuth(),
      baseUrl: graph.origin,
      sentItemsLookupMs: 0,
      retry: { baseDelayMs: 10 },
    });
    await t.listMessages({ folder: "inbox" })[Symbol.asyncIterator]().next();
    expect(gets).toBe(2);
    const error = await failure(t.send({ to: "a@contoso.com", subject: "s", text: "t" }));
    expect(error.code).toBe("SERVER_ERROR");
    // 3 sends at most (1 + 2 resends), each preceded by a Sent Items look-up that found nothing.
    const posts = graph.requests.filter((r) => r.method === "POST");
    expect(posts.length).toBe(3);
  });

  it("keeps at most maxConcurrency requests in flight", async () => {
    graph.handle(() => ({ json: { value: [] }, delayMs: 40 }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, maxConcurrency: 3 });
    await Promise.all(Array.from({ length: 12 }, (_, i) => t.markRead(`m${i}`, true)));
    expect(graph.requests).toHaveLength(12);
    expect(graph.maxInFlight).toBe(3);
  });

  it("a request with no answer within timeoutMs is TIMEOUT", async () => {
    graph.handle(() => ({ json: {}, delayMs: 2000 }));
    const t = graphTransport({
      auth: fakeAuth(),
      baseUrl: graph.origin,
      timeoutMs: 200,
      retry: { attempts: 1 },
    });
    const error = await failure(t.markRead("m1", true));
    expect(error.code).toBe("TIMEOUT");
    expect(error.retryable).toBe(true);
  });

  it("a download whose body stops half-way fails with TIMEOUT after timeoutMs of silence, not never", async () => {
    // Headers and the first bytes arrive, then nothing: the request's own timeout has already ended.
    const stalling = createServer((req, res) => {
      if (req.url?.includes("$value")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.write(Buffer.alloc(1000, 1));
        return; // never ends
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          "@odata.type": "#microsoft.graph.fileAttachment",
          id: "a1",
          name: "big.bin",
          size: 5000,
        }),
      );
    });
    await new Promise<void>((resolve) => stalling.listen(0, "127.0.0.1", resolve));
    try {
      const t = graphTransport({
        auth: fakeAuth(),
        baseUrl: `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`,
        timeoutMs: 300,
        retry: { attempts: 1 },
      });
      const download = await t.downloadAttachment("m1", "a1");
      let received = 0;
      const started = Date.now();
      const error = await failure(
        (async () => {
          for await (const chunk of download.content) received += chunk.length;
        })(),
      );
      expect(received).toBe(1000);
      expect(error.code).toBe("TIMEOUT");
      expect(error.hint).toMatch(/timeoutMs/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      stalling.closeAllConnections();
      await new Promise((resolve) => stalling.close(resolve));
    }
  });

  // Regression: these aborts lacked `requestSent: false`, so an outbox shutting down during a backlog
  // parked sends that never left as `uncertain` instead of returning them to the queue.
  it("a send aborted while waiting for a request slot: ABORTED, requestSent false, nothing posted", async () => {
    graph.handle((r) => (r.method === "GET" ? { json: { value: [] }, delayMs: 3000 } : { status: 202 }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, maxConcurrency: 1 });
    const busy = t.getMessage("slow").catch(() => undefined);
    await expect.poll(() => graph.inFlight).toBe(1);
    const error = await failure(
      t.send({ to: "a@contoso.com", subject: "s", text: "t" }, { signal: AbortSignal.timeout(100) }),
    );
    expect(error.code).toBe("ABORTED");
    expect(error.requestSent).toBe(false);
    expect(graph.requests.filter((r) => r.method === "POST")).toHaveLength(0);
    await t.close();
    await busy;
  });

  it("a send aborted while waiting out a 429: ABORTED, requestSent false, posted once", async () => {
    graph.handle(() => graphErrorReply(429, "ApplicationThrottled", "busy", { "retry-after": "20" }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, uncertainSends: "report" });
    const error = await failure(
      t.send({ to: "a@contoso.com", subject: "s", text: "t" }, { signal: AbortSignal.timeout(300) }),
    );
    expect(error.code).toBe("ABORTED");
    expect(error.requestSent).toBe(false);
    expect(graph.requests.filter((r) => r.method === "POST")).toHaveLength(1);
  });

  it("an aborted call is ABORTED", async () => {
    graph.handle(() => ({ json: {}, delayMs: 2000 }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin });
    const error = await failure(t.markRead("m1", true, { signal: AbortSignal.timeout(100) }));
    expect(error.code).toBe("ABORTED");
  });
});

describe("errors", () => {
  it("403 on a shared mailbox names Mail.Read.Shared and the consent step", async () => {
    graph.handle(() =>
      graphErrorReply(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    );
    const t = graphTransport({
      auth: fakeAuth({ scp: "User.Read Mail.Read" }),
      baseUrl: graph.origin,
      mailbox: "info@contoso.com",
    });
    const error = await failure(t.getMessage("m1"));
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.message).toContain("Mail.Read.Shared");
    expect(error.hint).toContain("API permissions");
    expect(error.hint).toContain("Grant admin consent");
    expect(graph.requests[0]?.url).toContain("/v1.0/users/info%40contoso.com/messages/m1");
  });

  it("404 is NOT_FOUND, 413 is MESSAGE_TOO_LARGE", async () => {
    graph.handle((r) =>
      r.method === "GET"
        ? graphErrorReply(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        : graphErrorReply(413, "RequestEntityTooLarge", "too large"),
    );
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin });
    expect((await failure(t.getMessage("gone"))).code).toBe("NOT_FOUND");
    expect((await failure(t.send({ to: "a@contoso.com", subject: "x", text: "y" }))).code).toBe(
      "MESSAGE_TOO_LARGE",
    );
  });

  // Regression: an unexpected 4xx to sendMail was SERVER_ERROR without `requestSent: false` or a hint,
  // so the outbox counted a definite refusal as "may have been sent" and parked it `uncertain`.
  it.each([
    [400, "ErrorMessageSubmissionBlocked"],
    [409, "ErrorQuotaExceeded"],
  ])(
    "an unexpected %i %s to sendMail is a refusal: not sent, not retried, with a hint",
    async (status, code) => {
      graph.handle((r) =>
        r.method === "POST" ? graphErrorReply(status, code, "refused") : { json: { value: [] } },
      );
      for (const uncertainSends of ["report", "check-then-resend"] as const) {
        graph.requests.length = 0;
        const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin, uncertainSends });
        const error = await failure(t.send({ to: "a@contoso.com", subject: "s", text: "t" }));
        expect(error).toMatchObject({ code: "SERVER_ERROR", status, serverCode: code, retryable: false });
        expect(error.requestSent).toBe(false);
        expect(error.hint).toContain(code);
        // One POST, no Sent Items look-up, no resend.
        expect(graph.requests.map((r) => r.method)).toEqual(["POST"]);
        await t.close();
      }
    },
  );

  it("a non-JSON error body still maps by status", async () => {
    graph.handle(() => ({
      status: 403,
      body: "<html>denied</html>",
      headers: { "content-type": "text/html" },
    }));
    const t = graphTransport({ auth: fakeAuth(), baseUrl: graph.origin });
    const error = await failure(t.markRead("m1", true));
    expect(isM365MailError(error, "ACCESS_DENIED")).toBe(true);
    expect(error.message).toContain("Mail.ReadWrite");
  });
});

describe("log safety", () => {
  it("no token reaches a log line or an error, through refreshes, retries and a lost send", async () => {
    const stale = fakeJwt({ aud: "https://graph.microsoft.com", n: 1 });
    const fresh = fakeJwt({ aud: "https://graph.microsoft.com", n: 2 });
    const auth = fakeAuth({ tokens: [stale, fresh] });
    const lines: string[] = [];
    const capture = (m: string, d?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(d ?? {})}`);
    let sends = 0;
    graph.handle((r) => {
      if (r.headers.authorization !== `Bearer ${fresh}`)
        return graphErrorReply(401, "InvalidAuthenticationToken", "expired");
      if (r.url.includes("sentitems")) return { json: { value: [] } };
      if (r.url.endsWith("/sendMail"))
        return sends++ === 0 ? graphErrorReply(504, "GatewayTimeout", "") : { status: 202 };
      return graphErrorReply(429, "ApplicationThrottled", "busy", { "retry-after": "0" });
    });
    const t = graphTransport({
      auth,
      baseUrl: graph.origin,
      sentItemsLookupMs: 0,
      retry: { attempts: 2, baseDelayMs: 1 },
      logger: { debug: capture, info: capture, warn: capture, error: capture },
    });
    await t.send({ to: "a@contoso.com", subject: "s", text: "t" });
    const error = await failure(t.markRead("m1", true));
    expect(error.code).toBe("THROTTLED");
    expect(lines.length).toBeGreaterThan(0);
    const everything = [...lines, error.message, error.hint ?? "", JSON.stringify(error.toJSON())].join("\n");
    for (const token of [stale, fresh]) {
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(token.split(".")[1]!);
    }
  });
});
