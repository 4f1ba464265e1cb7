import { createServer } from "node:net";
import { M365MailError, type TokenProvider } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { smtpTransport } from "../src/index.js";

// Regression: an abort while a send waited (for the rate limit, or to retry after a failure that sent
// nothing) lacked `requestSent: false`, so an outbox shutting down during a backlog parked messages
// that never left as `uncertain` instead of returning them to the queue.

const auth: TokenProvider = {
  kind: "token-provider",
  name: "stub",
  username: "support@contoso.com",
  getAccessToken: async (resource) => ({
    token: "eyJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSJ9.x",
    expiresAt: new Date(Date.now() + 3_600_000),
    resource,
    scopes: [],
  }),
};

/** A port nothing listens on: every connection is refused at once (nothing is sent). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const message = { to: "alice@contoso.com", subject: "s", text: "t" };

async function abortedAfter(ms: number, send: (signal: AbortSignal) => Promise<unknown>) {
  const controller = new AbortController();
  const outcome = send(controller.signal).then(
    () => undefined,
    (error: unknown) => error,
  );
  setTimeout(() => controller.abort(), ms);
  const error = await outcome;
  if (!(error instanceof M365MailError)) throw new Error(`expected an M365MailError, got ${String(error)}`);
  return error;
}

describe("a send aborted before anything reached Exchange says so", () => {
  it("aborted while waiting for the per-minute limit: ABORTED, requestSent false", async () => {
    const smtp = smtpTransport({
      auth,
      host: "127.0.0.1",
      port: await closedPort(),
      maxMessagesPerMinute: 1,
      retry: false,
    });
    try {
      // Uses this minute's one slot (and fails: nothing listens).
      await smtp.send(message).catch(() => undefined);
      const error = await abortedAfter(50, (signal) => smtp.send(message, { signal }));
      expect(error.code).toBe("ABORTED");
      expect(error.requestSent).toBe(false);
    } finally {
      await smtp.close();
    }
  });

  it("aborted while waiting to retry a connection that was refused: ABORTED, requestSent false", async () => {
    const smtp = smtpTransport({
      auth,
      host: "127.0.0.1",
      port: await closedPort(),
      maxMessagesPerMinute: 0,
      retry: { attempts: 2, baseDelayMs: 20_000 },
    });
    try {
      const error = await abortedAfter(300, (signal) => smtp.send(message, { signal }));
      expect(error.code).toBe("ABORTED");
      expect(error.requestSent).toBe(false);
    } finally {
      await smtp.close();
    }
  });
});
