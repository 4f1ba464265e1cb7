import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { isDailySendingLimit, M365MailError } from "@m365-mail/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type EmulatorFixture, SUPPORT, startGraphEmulator } from "./emulator-helpers.js";

// Issue 12, item 1: a send that cannot have left is a definite error, never "may have been sent".

let fixture: EmulatorFixture;
let plain: Server;
let plainPort: number;
// Test servers listen on 127.0.0.1 only, so nothing answers on 127.0.0.2 (fetch refuses ports such as 1).
const CLOSED = "https://127.0.0.2:44999";
beforeAll(async () => {
  fixture = await startGraphEmulator();
  // Speaks plain HTTP where TLS is expected: the TLS handshake fails.
  plain = createServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  plainPort = (plain.address() as { port: number }).port;
});
afterAll(async () => {
  plain?.close();
  await fixture?.stop();
});
afterEach(() => fixture.emulator.admin.resetCounts());

async function sendFailure(options: Parameters<EmulatorFixture["transport"]>[0]): Promise<M365MailError> {
  const transport = fixture.transport({ retry: { attempts: 2, baseDelayMs: 10 }, ...options });
  const outcome = await transport.send({ to: SUPPORT, subject: "never left", text: "x" }).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof M365MailError))
    throw new Error(`expected an M365MailError, got ${String(outcome)}`);
  return outcome;
}

function expectNotSent(error: M365MailError) {
  expect(error.requestSent).toBe(false);
  expect(error.message).not.toMatch(/may have been sent|no clear answer/);
  expect(error.message).toContain("not sent");
  // Nothing reached Graph: no sendMail, and no Sent Items look-up for a message that never left.
  const counts = fixture.emulator.admin.counts();
  expect(Object.keys(counts).filter((k) => k.startsWith("graph.") && (counts[k] ?? 0) > 0)).toEqual([]);
}

describe("a Graph send that never left is a definite, typed error", () => {
  it("sign-in authority unreachable: CONNECTION_FAILED, retryable", async () => {
    const error = await sendFailure({
      auth: fixture.auth({ authorityHost: CLOSED }),
    });
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: true });
    expectNotSent(error);
  });

  it("sign-in authority with a certificate from an untrusted CA: CONNECTION_FAILED naming TLS, not retryable", async () => {
    // Trust only the system's roots, not the emulator's CA.
    const error = await sendFailure({
      auth: fixture.auth({ ca: readFileSync("/etc/ssl/certs/ca-certificates.crt") }),
    });
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: false });
    expect(error.message).toMatch(/certificate/i);
    expectNotSent(error);
  });

  it("an AADSTS refusal (wrong password): AUTH_FAILED with its AADSTS code, not retryable", async () => {
    const error = await sendFailure({ auth: fixture.auth({ password: "wrong-password" }) });
    expect(error).toMatchObject({
      code: "AUTH_FAILED",
      retryable: false,
      serverCode: expect.stringMatching(/^AADSTS/),
    });
    expectNotSent(error);
  });

  it("Graph refuses the connection: CONNECTION_FAILED, retryable", async () => {
    const error = await sendFailure({ baseUrl: CLOSED });
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: true });
    expect(error.message).toContain("ECONNREFUSED");
    expectNotSent(error);
  });

  it("the TLS handshake with Graph fails: CONNECTION_FAILED naming TLS, not retryable", async () => {
    const error = await sendFailure({ baseUrl: `https://127.0.0.1:${plainPort}` });
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: false });
    expect(error.message).toMatch(/TLS/);
    expectNotSent(error);
  });
});

describe('uncertainSends: "report"', () => {
  it("a 504 after sendMail was processed is thrown at once: no Sent Items look-up, no second send", async () => {
    const t = fixture.transport({ uncertainSends: "report" });
    const subject = `report ${Date.now()}`;
    fixture.emulator.admin.armFault({ target: "graph", path: "/sendMail", kind: "status504", after: true });
    const error = await t.send({ to: SUPPORT, subject, text: "once" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "SERVER_ERROR", status: 504 });
    expect((error as M365MailError).requestSent).toBeUndefined();
    const counts = fixture.emulator.admin.counts();
    // One sendMail, and no GET on Sent Items.
    expect(counts["graph.requests"]).toBe(1);
    const inbox = [];
    for await (const m of t.listMessages({ folder: "inbox", pageSize: 100 }))
      if (m.subject === subject) inbox.push(m);
    expect(inbox).toHaveLength(1);
  });
});

describe("the mailbox's daily sending limit", () => {
  it("is THROTTLED at once, not retried, not sent, and recognised by isDailySendingLimit", async () => {
    // m365-facts.md: past 10,000 recipients in 24 hours Exchange refuses sending; shortened to 1 recipient.
    fixture.emulator.admin.updatePartSettings("graph", { recipientsPerDay: 1, recipientWindowMs: 1_000 });
    // Earlier tests' recipients leave the window first.
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    try {
      const t = fixture.transport({ retry: { attempts: 5, baseDelayMs: 10 } });
      await t.send({ to: SUPPORT, subject: "fits", text: "x" });
      fixture.emulator.admin.resetCounts();
      const error = await t.send({ to: SUPPORT, subject: "over the limit", text: "x" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({
        code: "THROTTLED",
        retryable: false,
        requestSent: false,
        serverCode: "ErrorSubmissionQuotaExceeded",
      });
      expect(isDailySendingLimit(error)).toBe(true);
      expect((error as M365MailError).hint).toMatch(/10,000 recipients a day/);
      // One try: a 429 that lifts over hours is not waited out like throttling.
      expect(fixture.emulator.admin.counts()["graph.sendMail"]).toBe(1);
      expect(fixture.emulator.admin.counts()["graph.rejected.quota"]).toBe(1);
    } finally {
      fixture.emulator.admin.updatePartSettings("graph", {
        recipientsPerDay: 10_000,
        recipientWindowMs: 86_400_000,
      });
    }
  });
});
