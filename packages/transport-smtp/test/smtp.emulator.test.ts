import { createMailbox, isM365MailError, type M365MailError, type TokenProvider } from "@m365-mail/core";
import { DEFAULT_SMTP_LIMITS } from "@m365-mail/emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type SmtpTransport, type SmtpTransportOptions, smtpTransport } from "../src/index.js";
import {
  emulatorProvider,
  readFolder,
  spyProvider,
  startTestEmulator,
  type TestEmulator,
} from "./helpers.js";

let env: TestEmulator;
let support: TokenProvider;
const open: SmtpTransport[] = [];

function transport(options: Partial<SmtpTransportOptions> = {}): SmtpTransport {
  const t = smtpTransport({ auth: support, ca: env.emulator.caPem, ...options });
  open.push(t);
  return t;
}

const counts = () => env.emulator.admin.counts();
let seq = 0;
const subject = (what: string) => `${what} #${++seq}-${Date.now()}`;

async function failure(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isM365MailError(error)).toBe(true);
  return error as M365MailError;
}

beforeAll(async () => {
  env = await startTestEmulator();
  support = emulatorProvider(env.emulator);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
  env.emulator.admin.clearFaults();
  env.emulator.admin.updateTenant(env.emulator.tenantId, { smtpAuthEnabled: true, securityDefaults: false });
  env.smtp.setLimits(DEFAULT_SMTP_LIMITS);
  // Forget the previous test's messages in the rate window (and connection peaks).
  env.smtp.resetStats();
  env.emulator.admin.resetCounts();
});

afterAll(async () => {
  await support?.dispose?.();
  await env?.cleanup();
});

describe("sending", () => {
  it("sends as the signed-in mailbox: readable over Graph in the recipient's Inbox, a read copy in Sent Items", async () => {
    const s = subject("Ticket update");
    const result = await transport().send({
      to: "Alice <alice@contoso.com>",
      subject: s,
      text: "Your ticket was updated.",
    });
    expect(result).toMatchObject({ transport: "smtp", accepted: ["alice@contoso.com"], rejected: [] });
    expect(result.messageId).toMatch(/^<[^@>]+@contoso\.com>$/);

    const inbox = (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s);
    expect(inbox).toHaveLength(1);
    expect(inbox[0]).toMatchObject({ from: "support@contoso.com", messageId: result.messageId, seen: false });
    expect(inbox[0]!.text?.trim()).toBe("Your ticket was updated.");
    const sent = (await readFolder(env.emulator, "support@contoso.com", "sentitems")).filter(
      (m) => m.subject === s,
    );
    expect(sent).toEqual([expect.objectContaining({ seen: true })]);
  });

  it("keeps attachments and inline cid images, and bcc out of the headers", async () => {
    const s = subject("Report");
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    await transport().send({
      to: "alice@contoso.com",
      bcc: "shared@contoso.com",
      subject: s,
      html: '<p>Chart: <img src="cid:chart@report"></p>',
      headers: { "X-Ticket-Id": "42" },
      attachments: [
        { filename: "chart.png", content: png, contentType: "image/png", contentId: "chart@report" },
        { filename: "data.csv", content: "a,b\n1,2\n", contentType: "text/csv" },
      ],
    });
    const [mail] = (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s);
    expect(mail!.headers.get("x-ticket-id")).toBe("42");
    expect(mail!.headers.has("bcc")).toBe(false);
    const chart = mail!.attachments.find((a) => a.filename === "chart.png")!;
    expect(chart.contentId).toBe("<chart@report>");
    expect(chart.related).toBe(true);
    expect([...chart.content]).toEqual([...png]);
    expect(Buffer.from(mail!.attachments.find((a) => a.filename === "data.csv")!.content).toString()).toBe(
      "a,b\n1,2\n",
    );
    // Bcc reaches its mailbox through the envelope.
    const sharedInbox = await readFolder(env.emulator, "shared@contoso.com", "inbox", "support@contoso.com");
    expect(sharedInbox.some((m) => m.subject === s)).toBe(true);
  });

  it("sends as a shared mailbox with the delegate's token (user= the shared address)", async () => {
    const s = subject("From the shared inbox");
    const shared = transport({ mailbox: "shared@contoso.com" });
    expect(shared.mailbox).toBe("shared@contoso.com");
    await shared.send({ to: "alice@contoso.com", subject: s, text: "hello" });
    const [mail] = (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s);
    expect(mail!.from).toBe("shared@contoso.com");
    expect(counts()["smtp.messages:shared@contoso.com"]).toBe(1);
  });

  it("sends a prepared RFC 5322 message, taking recipients from its headers", async () => {
    const s = subject("Raw");
    const raw = [
      "From: support@contoso.com",
      "To: alice@contoso.com",
      `Subject: ${s}`,
      "Message-ID: <raw-1@contoso.com>",
      "",
      "raw body",
    ].join("\r\n");
    const result = await transport().send({ raw });
    expect(result).toMatchObject({ messageId: "<raw-1@contoso.com>", accepted: ["alice@contoso.com"] });
    expect((await readFolder(env.emulator, "alice@contoso.com")).some((m) => m.subject === s)).toBe(true);
  });

  it("works through createMailbox with typed lookup", async () => {
    const mailbox = createMailbox({ auth: support, transports: [transport()] });
    const smtp = mailbox.transport("smtp");
    expect(smtp.mailbox).toBe("support@contoso.com");
    const result = await mailbox.send({
      to: "alice@contoso.com",
      subject: subject("Via mailbox"),
      text: "x",
    });
    expect(result.transport).toBe("smtp");
  });

  it("refuses malformed input before connecting (MESSAGE_INVALID)", async () => {
    const t = transport();
    const error = await failure(
      t.send({ to: "alice@contoso.com", subject: "a\r\nBcc: victim@example.com", text: "x" }),
    );
    expect(error.code).toBe("MESSAGE_INVALID");
    expect((await failure(t.send({ subject: "nobody" }))).code).toBe("MESSAGE_INVALID");
    expect(counts()["smtp.connections"]).toBeUndefined();
  });

  it("fails with CONFIG_INVALID after close()", async () => {
    const t = transport();
    await t.close();
    expect((await failure(t.send({ to: "alice@contoso.com", text: "x" }))).code).toBe("CONFIG_INVALID");
  });
});

describe("relay: a message that is still arriving", () => {
  const rawMessage = (s: string, extra = "") =>
    Buffer.from(
      ["From: support@contoso.com", "To: alice@contoso.com", `Subject: ${s}`, extra, "", "relayed body"]
        .filter((line, i) => i !== 3 || line !== "")
        .join("\r\n"),
    );

  it("delivers to the envelope once the bytes arrive, adding a Message-ID as send does", async () => {
    const s = subject("Relayed");
    let arrive!: (raw: Buffer) => void;
    const raw = new Promise<Buffer>((resolve) => {
      arrive = resolve;
    });
    // noimap@ is in the envelope only (Bcc).
    const sending = transport().relay(
      { from: "support@contoso.com", to: ["alice@contoso.com", "noimap@contoso.com"] },
      raw,
    );
    // Exchange already has the connection (and the envelope) while the bytes are still on their way.
    await expect.poll(() => counts()["smtp.auth.ok"] ?? 0).toBeGreaterThanOrEqual(1);
    expect(counts()["smtp.messages"]).toBeUndefined();
    arrive(rawMessage(s));
    const result = await sending;
    expect(result).toMatchObject({ accepted: ["alice@contoso.com", "noimap@contoso.com"], rejected: [] });
    expect(result.messageId).toMatch(/^<[^@>]+@contoso\.com>$/);
    const inbox = (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s);
    expect(inbox).toEqual([expect.objectContaining({ messageId: result.messageId })]);
    expect(
      (await readFolder(env.emulator, "noimap@contoso.com")).filter((m) => m.subject === s),
    ).toHaveLength(1);
  });

  it("when the bytes never arrive, nothing is sent and relay rejects with their reason; the pool goes on", async () => {
    const t = transport();
    const s = subject("Never complete");
    const reason = new Error("the client closed the connection during DATA");
    const raw = new Promise<Buffer>((_, reject) => setTimeout(() => reject(reason), 100));
    await expect(t.relay({ from: "support@contoso.com", to: ["alice@contoso.com"] }, raw)).rejects.toBe(
      reason,
    );
    expect(counts()["smtp.messages"]).toBeUndefined();
    expect((await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s)).toEqual([]);
    await t.send({ to: "alice@contoso.com", subject: subject("After an abandoned relay"), text: "x" });
    expect(counts()["smtp.messages"]).toBe(1);
  });

  it("bytes slower than the socket timeout: the idle attempt is dropped and the whole message sent once", async () => {
    // A slow device: Exchange would drop a connection that waits after 354 for too long.
    const s = subject("Slow upload");
    const raw = new Promise<Buffer>((resolve) => setTimeout(() => resolve(rawMessage(s)), 1500));
    const result = await transport({
      timeoutMs: 500,
      retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
    }).relay({ from: "support@contoso.com", to: ["alice@contoso.com"] }, raw);
    expect(result.accepted).toEqual(["alice@contoso.com"]);
    // The first connection timed out waiting after 354; the second carried the whole message.
    expect(counts()).toMatchObject({ "smtp.connections": 2, "smtp.messages": 1 });
    expect((await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s)).toHaveLength(
      1,
    );
  });

  it("a 4xx at the end of data is retried with the whole message, delivered once", async () => {
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503", times: 1 });
    const s = subject("Relayed after a hiccup");
    const raw = new Promise<Buffer>((resolve) =>
      setTimeout(() => resolve(rawMessage(s, "Message-ID: <relay-retry@contoso.com>")), 50),
    );
    const result = await transport({ retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 } }).relay(
      { from: "support@contoso.com", to: ["alice@contoso.com"] },
      raw,
    );
    expect(result.messageId).toBe("<relay-retry@contoso.com>");
    expect(counts()["smtp.faults.status503"]).toBe(1);
    expect((await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s)).toHaveLength(
      1,
    );
  });
});

describe("Exchange's refusals as typed errors", () => {
  it("5.7.139 for the mailbox → PROTOCOL_DISABLED with the Manage email apps hint", async () => {
    const nosmtp = emulatorProvider(env.emulator, "nosmtp@contoso.com");
    try {
      const error = await failure(transport({ auth: nosmtp }).send({ to: "alice@contoso.com", text: "x" }));
      expect(error).toMatchObject({
        code: "PROTOCOL_DISABLED",
        serverCode: "5.7.139",
        retryable: false,
        source: "smtp",
        requestSent: false,
      });
      expect(error.hint).toContain("Manage email apps → Authenticated SMTP");
      expect(error.message).toContain("for the mailbox");
    } finally {
      await nosmtp.dispose?.();
    }
  });

  it("5.7.139 for the tenant → PROTOCOL_DISABLED naming the org-wide switch", async () => {
    env.emulator.admin.updateTenant(env.emulator.tenantId, { smtpAuthEnabled: false });
    const error = await failure(transport().send({ to: "alice@contoso.com", text: "x" }));
    expect(error.code).toBe("PROTOCOL_DISABLED");
    expect(error.hint).toContain("Turn off SMTP AUTH protocol for your organization");
    expect(error.hint).toContain("Security Defaults");
  });

  it("535 5.7.3 with a Graph token → WRONG_SCOPE telling the full Outlook scope", async () => {
    const graphy = spyProvider(support, { resource: "graph" });
    const error = await failure(transport({ auth: graphy }).send({ to: "alice@contoso.com", text: "x" }));
    expect(error).toMatchObject({ code: "WRONG_SCOPE", serverCode: "5.7.3" });
    expect(error.hint).toContain("https://outlook.office.com/SMTP.Send");
    // One fresh token was tried before giving up (it could have been a revoked one).
    expect(graphy.calls.filter((c) => c.forceRefresh)).toHaveLength(1);
  });

  it("535 5.7.3 with a token lacking SMTP.Send → CONSENT_REQUIRED pointing at API permissions and admin consent", async () => {
    const app = env.emulator.context.directory().tenants[0]!.apps[0]!;
    const granted = structuredClone(app.grantedPermissions);
    env.emulator.admin.updateApp(app.clientId, {
      grantedPermissions: { ...granted, outlook: ["IMAP.AccessAsUser.All"] },
    });
    const limited = emulatorProvider(env.emulator);
    try {
      const error = await failure(transport({ auth: limited }).send({ to: "alice@contoso.com", text: "x" }));
      expect(error.code).toBe("CONSENT_REQUIRED");
      expect(error.hint).toMatch(/API permissions.*SMTP\.Send.*Grant admin consent/);
    } finally {
      env.emulator.admin.updateApp(app.clientId, { grantedPermissions: granted });
      await limited.dispose?.();
    }
  });

  it("535 5.7.3 for user= a mailbox the user cannot use → ACCESS_DENIED naming the delegation to grant", async () => {
    const error = await failure(
      transport({ mailbox: "alice@contoso.com" }).send({ to: "shared@contoso.com", text: "x" }),
    );
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.message).toContain("user=alice@contoso.com with support@contoso.com's token");
    expect(error.hint).toContain("Delegation");
  });

  it("554 5.2.252 SendAsDenied → SEND_AS_DENIED, not retried", async () => {
    const error = await failure(
      transport().send({ from: "alice@contoso.com", to: "alice@contoso.com", text: "x" }),
    );
    expect(error).toMatchObject({ code: "SEND_AS_DENIED", serverCode: "5.2.252", retryable: false });
    expect(error.message).toContain("support@contoso.com may not send as alice@contoso.com");
    expect(error.hint).toContain("Send as");
    expect(counts()["smtp.rejected.sendas"]).toBe(1);
  });

  it("432 4.3.2 over Exchange's connection limit → THROTTLED, retryable", async () => {
    env.smtp.setLimits({ maxConnectionsPerMailbox: 1 });
    const t = transport({ maxConnections: 2, retry: false });
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((i) =>
        t.send({ to: "alice@contoso.com", subject: subject(`Parallel ${i}`), text: "x" }),
      ),
    );
    const refused = results
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => r.reason);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ code: "THROTTLED", serverCode: "4.3.2", retryable: true });
  });

  it("retries a 4xx with backoff and delivers once", async () => {
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503", times: 2 });
    const s = subject("After a hiccup");
    await transport({ retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 50 } }).send({
      to: "alice@contoso.com",
      subject: s,
      text: "x",
    });
    expect(counts()["smtp.faults.status503"]).toBe(2);
    expect((await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s)).toHaveLength(
      1,
    );
  });

  it("a connection dropped after the final dot: resent by default, thrown at once with uncertainSends: report", async () => {
    const quick = { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 };
    // Default ("resend"): the transport cannot know whether Exchange took it, and sends it again.
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "reset", times: 1 });
    const resent = subject("Dropped, then resent");
    await transport({ retry: quick }).send({ to: "alice@contoso.com", subject: resent, text: "x" });
    expect(
      (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === resent),
    ).toHaveLength(1);
    // "report": one attempt, and an error that says what it means for the message.
    const before = counts()["smtp.faults.reset"] ?? 0;
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "reset", times: 1 });
    const reported = subject("Dropped, then reported");
    const error = await failure(
      transport({ retry: quick, uncertainSends: "report" }).send({
        to: "alice@contoso.com",
        subject: reported,
        text: "x",
        messageId: "<dropped-report@contoso.com>",
      }),
    );
    expect(error.requestSent).toBeUndefined();
    expect(error.retryable).toBe(false);
    expect(error.message).toContain("may have been sent");
    expect(error.hint).toContain("<dropped-report@contoso.com>");
    expect(error.hint).toContain("Sent Items");
    expect((counts()["smtp.faults.reset"] ?? 0) - before).toBe(1);
    // The emulator dropped it before filing it, and nothing sent it again.
    await new Promise((r) => setTimeout(r, 300));
    expect(
      (await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === reported),
    ).toHaveLength(0);
  });

  it("uncertainSends: report still retries a refusal that sent nothing (4xx at the end of data)", async () => {
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503", times: 1 });
    const s = subject("Refused, then retried");
    await transport({
      retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
      uncertainSends: "report",
    }).send({
      to: "alice@contoso.com",
      subject: s,
      text: "x",
    });
    expect((await readFolder(env.emulator, "alice@contoso.com")).filter((m) => m.subject === s)).toHaveLength(
      1,
    );
  });

  it("gives up on a 4xx after the configured attempts with the last error", async () => {
    env.emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503", times: 5 });
    const error = await failure(
      transport({ retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10 } }).send({
        to: "alice@contoso.com",
        text: "x",
      }),
    );
    expect(error).toMatchObject({ code: "SERVER_ERROR", serverCode: "4.7.0", retryable: true });
    // Exchange answered the final dot with a refusal: it did not take the message (RFC 5321 4.2.5).
    expect(error.requestSent).toBe(false);
    expect(counts()["smtp.faults.status503"]).toBe(2);
  });

  it("a refused connection → CONNECTION_FAILED (retryable)", async () => {
    const t = transport({ port: 1, retry: false });
    const error = await failure(t.send({ to: "alice@contoso.com", text: "x" }));
    // Before DATA: certainly not sent (an outbox retries it without looking in Sent Items).
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: true, requestSent: false });
  });

  it("an untrusted certificate → CONNECTION_FAILED telling to pass `ca`", async () => {
    const t = smtpTransport({ auth: support, retry: false });
    open.push(t);
    const error = await failure(t.send({ to: "alice@contoso.com", text: "x" }));
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: false, requestSent: false });
    expect(error.hint).toContain("`ca`");
  });
});

describe("Exchange's limits", () => {
  it("4 concurrent senders on one transport never open more than 3 connections", async () => {
    const t = transport();
    const sender = (n: number) =>
      Promise.all(
        [1, 2, 3, 4, 5].map((i) =>
          t.send({ to: "alice@contoso.com", subject: subject(`Burst ${n}.${i}`), text: "x" }),
        ),
      );
    await Promise.all([1, 2, 3, 4].map(sender));
    const c = counts();
    expect(c["smtp.messages"]).toBe(20);
    expect(c["smtp.connections.peak:support@contoso.com"]).toBeLessThanOrEqual(3);
    expect(c["smtp.rejected.concurrency"]).toBeUndefined();
  });

  it("the per-minute limiter makes sends wait instead of fail", async () => {
    // A short window stands in for Exchange's minute; the emulator refuses anything over it.
    env.smtp.setLimits({ messagesPerWindow: 3, rateWindowMs: 600, rateLimitMode: "reject" });
    const paced = transport({ maxMessagesPerMinute: 3, rateWindowMs: 600, retry: false });
    const sends = [1, 2, 3, 4, 5, 6, 7].map((i) =>
      paced.send({ to: "alice@contoso.com", subject: subject(`Paced ${i}`), text: "x" }),
    );
    const results = await Promise.allSettled(sends);
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(counts()["smtp.messages"]).toBe(7);
    expect(counts()["smtp.rate.rejected"]).toBeUndefined();
  });

  it("a send waiting for the rate window stops at once when aborted", async () => {
    const t = transport({ maxMessagesPerMinute: 1 });
    await t.send({ to: "alice@contoso.com", subject: subject("First of the minute"), text: "x" });
    const controller = new AbortController();
    const waiting = t.send(
      { to: "alice@contoso.com", subject: subject("Second"), text: "x" },
      { signal: controller.signal },
    );
    controller.abort();
    expect((await failure(waiting)).code).toBe("ABORTED");
    expect(counts()["smtp.messages"]).toBe(1);
  });

  it("without the limiter the same burst is deferred by Exchange (THROTTLED)", async () => {
    env.smtp.setLimits({ messagesPerWindow: 3, rateWindowMs: 60_000, rateLimitMode: "reject" });
    const unpaced = transport({ maxMessagesPerMinute: 0, retry: false });
    const results = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((i) =>
        unpaced.send({ to: "alice@contoso.com", subject: subject(`Unpaced ${i}`), text: "x" }),
      ),
    );
    const refused = results
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => r.reason);
    expect(refused).toHaveLength(2);
    expect(refused[0]).toMatchObject({ code: "THROTTLED", serverCode: "4.4.2", retryable: true });
  });
});

describe("tokens", () => {
  it("renews the token through provisionCallback when Exchange refuses a revoked one (535), then sends", async () => {
    const provider = emulatorProvider(env.emulator, "alice@contoso.com");
    const spy = spyProvider(provider);
    try {
      await transport({ auth: spy }).send({
        to: "support@contoso.com",
        subject: subject("Before revoke"),
        text: "x",
      });
      env.emulator.admin.revokeTokens("alice@contoso.com");
      const passwordGrants = counts()["entra.token.password"] ?? 0;
      // A new transport (a new connection) signs in again with the provider's cached, now revoked token.
      const s = subject("After revoke");
      await transport({ auth: spy }).send({ to: "support@contoso.com", subject: s, text: "x" });
      expect(counts()["smtp.auth.failed"]).toBe(1);
      expect(spy.calls.filter((c) => c.forceRefresh)).toHaveLength(1);
      expect(counts()["entra.token.password"]).toBeGreaterThan(passwordGrants);
      expect((await readFolder(env.emulator, "support@contoso.com")).some((m) => m.subject === s)).toBe(true);
    } finally {
      await provider.dispose?.();
    }
  });

  it("keeps a pooled session sending after its token is revoked (Exchange checks tokens at AUTH only)", async () => {
    const provider = emulatorProvider(env.emulator, "alice@contoso.com");
    const spy = spyProvider(provider);
    try {
      const t = transport({ auth: spy });
      await t.send({ to: "support@contoso.com", subject: subject("One"), text: "x" });
      env.emulator.admin.revokeTokens("alice@contoso.com");
      await t.send({ to: "support@contoso.com", subject: subject("Two"), text: "x" });
      expect(counts()["smtp.auth.ok"]).toBe(1);
      expect(spy.calls).toHaveLength(1);
    } finally {
      await provider.dispose?.();
    }
  });

  it("never puts the token in errors or logs", async () => {
    const lines: string[] = [];
    const sink = {
      debug: (m: string) => lines.push(m),
      info: (m: string) => lines.push(m),
      warn: (m: string) => lines.push(m),
      error: (m: string) => lines.push(m),
    };
    const graphy = spyProvider(support, { resource: "graph" });
    const error = await failure(
      transport({ auth: graphy, logger: sink }).send({ to: "alice@contoso.com", text: "x" }),
    );
    const { token } = await support.getAccessToken("graph");
    expect(JSON.stringify(error.toJSON())).not.toContain(token);
    expect(lines.join("\n")).not.toContain(token);
    expect(lines.length).toBeGreaterThan(0);
  });
});

describe("verify()", () => {
  it("signs in and runs MAIL FROM + RSET: three passing checks", async () => {
    const report = await transport().verify();
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["connect", true],
      ["SMTP AUTH", true],
      ["MAIL FROM", true],
    ]);
    expect(report.checks[1]!.permission).toBe("SMTP.Send");
    expect(counts()["smtp.messages"]).toBeUndefined();
  });

  it("reports a refused sign-in with the typed error and hint", async () => {
    const nosmtp = emulatorProvider(env.emulator, "nosmtp@contoso.com");
    try {
      const report = await transport({ auth: nosmtp }).verify();
      expect(report.ok).toBe(false);
      const auth = report.checks.find((c) => c.name === "SMTP AUTH")!;
      expect(auth.ok).toBe(false);
      expect(auth.error?.code).toBe("PROTOCOL_DISABLED");
      expect(report.checks.some((c) => c.name === "MAIL FROM")).toBe(false);
    } finally {
      await nosmtp.dispose?.();
    }
  });

  it("catches a server that accepts AUTH and then refuses the next command", async () => {
    env.emulator.admin.armFault({ target: "smtp", path: "/mail", kind: "status500" });
    const report = await transport().verify();
    expect(report.ok).toBe(false);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["connect", true],
      ["SMTP AUTH", true],
      ["MAIL FROM", false],
    ]);
    expect(report.checks[2]!.error?.serverCode).toBe("4.7.0");
  });
});
