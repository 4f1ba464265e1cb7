import { randomBytes } from "node:crypto";
import {
  type AccessToken,
  CLOUDS,
  type CloudPreset,
  createMailbox,
  type GetTokenOptions,
  M365MailError,
  type MessageSummary,
  type Resource,
  type TokenProvider,
} from "@m365-mail/core";
import { afterEach, describe, expect, it } from "vitest";
import { type Pop3TransportOptions, pop3Transport } from "../src/index.js";
import { type FakePop3Options, type FakePop3Server, mime, startFakePop3 } from "./fake-pop3-server.js";

interface Claims {
  aud?: string;
  scp?: string;
  upn?: string;
  exp?: number;
}

/** An unsigned JWT shaped like Microsoft's (only the claims matter to the transport). */
function jwt(claims: Claims, nonce = randomBytes(6).toString("hex")): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims, nonce })}.c2ln`;
}

const OUTLOOK_POP: Claims = {
  aud: "https://outlook.office.com",
  scp: "POP.AccessAsUser.All SMTP.Send",
  upn: "support@contoso.com",
};

/** Hands out tokens from a list, one per call (the last one repeats), and records each call. */
function fakeAuth(tokens: string[], cloud?: CloudPreset) {
  const calls: { resource: Resource; forceRefresh: boolean }[] = [];
  const provider: TokenProvider = {
    kind: "token-provider",
    name: "fake",
    username: "support@contoso.com",
    ...(cloud ? { cloud } : {}),
    async getAccessToken(resource: Resource, options: GetTokenOptions = {}): Promise<AccessToken> {
      calls.push({ resource, forceRefresh: options.forceRefresh ?? false });
      const token = tokens[Math.min(calls.length - 1, tokens.length - 1)]!;
      return { token, resource, scopes: [], expiresAt: new Date(Date.now() + 3_600_000) };
    },
  };
  return { provider, calls };
}

const servers: FakePop3Server[] = [];
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const server of servers.splice(0)) await server.close();
});

/** A server that accepts exactly the given tokens. */
async function serve(accepted: string[], options: FakePop3Options = {}) {
  const server = await startFakePop3({
    authorize: (_user, token) => (accepted.includes(token) ? "ok" : "err"),
    ...options,
  });
  servers.push(server);
  return server;
}

function transportFor(
  server: FakePop3Server,
  auth: TokenProvider,
  extra: Partial<Pop3TransportOptions> = {},
) {
  const transport = pop3Transport({
    auth,
    host: "127.0.0.1",
    port: server.port,
    ca: server.ca,
    timeoutMs: 5000,
    ...extra,
  });
  closers.push(() => transport.close());
  return transport;
}

async function rejection(promise: Promise<unknown>): Promise<M365MailError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    return error as M365MailError;
  }
  throw new Error("expected a rejection");
}

async function collect(iterable: AsyncIterable<MessageSummary>): Promise<MessageSummary[]> {
  const out: MessageSummary[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const pdf = randomBytes(20_000);
const withAttachment = mime([
  "Received: from mail.fabrikam.com by contoso.com; Tue, 3 Jun 2025 10:00:05 +0000",
  "From: Alice Wilber <alice@contoso.com>",
  "To: Support <support@contoso.com>, bob@contoso.com",
  "Cc: carol@contoso.com",
  "Subject: =?UTF-8?B?w4l0w6kgcmVwb3J0?=",
  "Date: Tue, 3 Jun 2025 09:59:00 +0000",
  "Message-ID: <report-1@contoso.com>",
  "MIME-Version: 1.0",
  'Content-Type: multipart/mixed; boundary="b1"',
  "",
  "--b1",
  'Content-Type: multipart/alternative; boundary="b2"',
  "",
  "--b2",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: 8bit",
  "",
  "Report attached.",
  ".leading dot",
  "--b2",
  "Content-Type: text/html; charset=utf-8",
  "",
  "<p>Report <b>attached</b>.</p>",
  "--b2--",
  "--b1",
  'Content-Type: application/pdf; name="report.pdf"',
  'Content-Disposition: attachment; filename="report.pdf"',
  "Content-Transfer-Encoding: base64",
  "",
  ...(pdf.toString("base64").match(/.{1,76}/g) ?? []),
  "--b1--",
]);

const older = mime([
  "Received: from x by contoso.com; Mon, 2 Jun 2025 08:00:00 +0000",
  "From: bob@contoso.com",
  "To: support@contoso.com",
  "Subject: older",
  "Date: Mon, 2 Jun 2025 08:00:00 +0000",
  "",
  "Old news.",
]);

describe("reading", () => {
  it("lists the Inbox newest first with headers from TOP, ids from UIDL and sizes from LIST", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "UID-old", source: older },
        { uid: "UID-new", source: withAttachment },
      ],
    });
    const { provider, calls } = fakeAuth([token]);
    const transport = transportFor(server, provider);
    const list = await collect(transport.listMessages());
    expect(list.map((m) => m.id)).toEqual(["UID-new", "UID-old"]);
    expect(list[0]).toMatchObject({
      id: "UID-new",
      folder: "inbox",
      subject: "Été report",
      from: { address: "alice@contoso.com", name: "Alice Wilber" },
      to: [{ address: "support@contoso.com", name: "Support" }, { address: "bob@contoso.com" }],
      cc: [{ address: "carol@contoso.com" }],
      internetMessageId: "<report-1@contoso.com>",
      size: withAttachment.length,
    });
    expect(list[0]!.receivedAt?.toISOString()).toBe("2025-06-03T10:00:05.000Z");
    expect(calls).toEqual([{ resource: "outlook", forceRefresh: false }]);
    // Headers only: no message body was downloaded.
    expect(server.sessions[0]!.lines.filter((l) => l.startsWith("RETR"))).toEqual([]);
    expect(server.sessions[0]!.lines.at(-1)).toBe("QUIT");
  });

  it("honours limit and since", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "a", source: older },
        { uid: "b", source: withAttachment },
      ],
    });
    const transport = transportFor(server, fakeAuth([token]).provider);
    expect((await collect(transport.listMessages({ limit: 1 }))).map((m) => m.id)).toEqual(["b"]);
    const since = new Date("2025-06-03T00:00:00Z");
    expect((await collect(transport.listMessages({ since }))).map((m) => m.id)).toEqual(["b"]);
    expect(await collect(transport.listMessages({ limit: 0 }))).toEqual([]);
  });

  it("since stops at the first message received before it: older headers are not fetched (issue 12)", async () => {
    // 60 messages, one a day, numbered in arrival order as Exchange numbers its maildrop.
    const day = (n: number) => new Date(Date.UTC(2025, 0, 1) + n * 86_400_000);
    const messages = Array.from({ length: 60 }, (_, n) => ({
      uid: `U${n}`,
      source: mime([
        `Received: from x by contoso.com; ${day(n).toUTCString()}`,
        "From: bob@contoso.com",
        "To: support@contoso.com",
        `Subject: day ${n}`,
        "",
        "body",
      ]),
    }));
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages });
    const transport = transportFor(server, fakeAuth([token]).provider);
    const list = await collect(transport.listMessages({ since: day(57) }));
    expect(list.map((m) => m.id)).toEqual(["U59", "U58", "U57"]);
    const tops = server.sessions.at(-1)!.lines.filter((l) => l.startsWith("TOP"));
    // The three wanted, then the first older one that ends the walk: not all 60.
    expect(tops).toEqual(["TOP 60 0", "TOP 59 0", "TOP 58 0", "TOP 57 0"]);
    // A message filed a little out of order (within the clock slack) does not end the listing early.
    const skew = mime([
      `Received: from x by contoso.com; ${new Date(day(59).getTime() - 60_000).toUTCString()}`,
      "Subject: skewed",
      "",
      "b",
    ]);
    const late = mime([
      `Received: from x by contoso.com; ${day(59).toUTCString()}`,
      "Subject: late",
      "",
      "b",
    ]);
    const skewed = await serve([token], {
      messages: [...messages.slice(0, 59), { uid: "S", source: skew }, { uid: "L", source: late }],
    });
    const t2 = transportFor(skewed, fakeAuth([token]).provider);
    expect((await collect(t2.listMessages({ since: day(59) }))).map((m) => m.id)).toEqual(["L"]);
    expect(skewed.sessions.at(-1)!.lines.filter((l) => l.startsWith("TOP")).length).toBe(3);
  });

  it("getMessage returns bodies, a byte-identical attachment and the raw source", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "r1", source: withAttachment }] });
    const transport = transportFor(server, fakeAuth([token]).provider);
    const message = await transport.getMessage("r1");
    expect(message.subject).toBe("Été report");
    expect(message.text).toBe("Report attached.\n.leading dot");
    expect(message.html).toBe("<p>Report <b>attached</b>.</p>");
    expect(message.attachments).toHaveLength(1);
    const attachment = message.attachments[0]!;
    expect(attachment).toMatchObject({
      filename: "report.pdf",
      contentType: "application/pdf",
      size: pdf.length,
    });
    expect(Buffer.from(attachment.content).equals(pdf)).toBe(true);
    expect(Buffer.from(message.raw!).equals(withAttachment)).toBe(true);
    expect(message.hasAttachments).toBe(true);
    expect(message.headers?.["message-id"]).toBe("<report-1@contoso.com>");
    // Read-only by default: still there.
    expect(server.messages).toHaveLength(1);
  });

  it("an unknown id is NOT_FOUND; other folders and unreadOnly are NOT_SUPPORTED", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "r1", source: older }] });
    const transport = transportFor(server, fakeAuth([token]).provider);
    expect((await rejection(transport.getMessage("nope"))).code).toBe("NOT_FOUND");
    expect((await rejection(transport.getMessage("r1", { folder: "sent" }))).code).toBe("NOT_SUPPORTED");
    expect((await rejection(collect(transport.listMessages({ unreadOnly: true })))).code).toBe(
      "NOT_SUPPORTED",
    );
    expect((await transport.getMessage("r1", { folder: "Inbox" })).subject).toBe("older");
  });

  it("refuses a message over maxMessageBytes without downloading it", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "big", source: withAttachment }] });
    const transport = transportFor(server, fakeAuth([token]).provider, { maxMessageBytes: 10_000 });
    const error = await rejection(transport.getMessage("big"));
    expect(error.code).toBe("MESSAGE_TOO_LARGE");
    expect(server.sessions.flatMap((s) => s.lines).some((l) => l.startsWith("RETR"))).toBe(false);
  });

  it("getMessage inside a listMessages loop shares the session instead of locking itself out", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "a", source: older },
        { uid: "b", source: withAttachment },
      ],
    });
    const transport = transportFor(server, fakeAuth([token]).provider);
    const subjects: string[] = [];
    for await (const summary of transport.listMessages()) {
      subjects.push((await transport.getMessage(summary.id)).subject);
    }
    expect(subjects).toEqual(["Été report", "older"]);
    expect(server.sessions).toHaveLength(1);
  });
});

describe("deleting", () => {
  it("deleteAfterRead deletes with DELE and commits with QUIT", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "a", source: older },
        { uid: "b", source: withAttachment },
      ],
    });
    const transport = transportFor(server, fakeAuth([token]).provider, { deleteAfterRead: true });
    expect((await transport.getMessage("a")).subject).toBe("older");
    const lines = server.sessions[0]!.lines;
    expect(lines.slice(-2)).toEqual(["DELE 1", "QUIT"]);
    expect(server.messages.map((m) => m.uid)).toEqual(["b"]);
    expect((await collect(transport.listMessages())).map((m) => m.id)).toEqual(["b"]);
  });

  it("deleteAfterRead inside a listMessages loop commits when the loop's session ends", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "a", source: older },
        { uid: "b", source: withAttachment },
        { uid: "c", source: older },
      ],
    });
    const transport = transportFor(server, fakeAuth([token]).provider, { deleteAfterRead: true });
    const read: string[] = [];
    for await (const summary of transport.listMessages()) {
      read.push((await transport.getMessage(summary.id)).id);
      // Still there until QUIT: POP3 deletes at the end of the session.
      expect(server.messages).toHaveLength(3);
    }
    expect(read).toEqual(["c", "b", "a"]);
    expect(server.messages).toHaveLength(0);
    expect(server.sessions).toHaveLength(1);
  });

  it("deleteMessage removes one message", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [
        { uid: "a", source: older },
        { uid: "b", source: older },
      ],
    });
    const transport = transportFor(server, fakeAuth([token]).provider);
    await transport.deleteMessage("b");
    expect(server.messages.map((m) => m.uid)).toEqual(["a"]);
    expect((await rejection(transport.deleteMessage("b"))).code).toBe("NOT_FOUND");
  });

  it("a failed getMessage deletes nothing even with deleteAfterRead", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      messages: [{ uid: "a", source: older }],
      override: (command) => (command === "RETR" ? "drop" : undefined),
    });
    const transport = transportFor(server, fakeAuth([token]).provider, { deleteAfterRead: true });
    expect((await rejection(transport.getMessage("a"))).code).toBe("CONNECTION_FAILED");
    expect(server.messages).toHaveLength(1);
  });
});

describe("signing in", () => {
  it("puts the shared mailbox in user= and the signed-in user's token in auth=", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "s", source: older }] });
    const transport = transportFor(server, fakeAuth([token]).provider, { mailbox: "shared@contoso.com" });
    await collect(transport.listMessages());
    expect(server.sessions[0]!.user).toBe("shared@contoso.com");
    expect(server.sessions[0]!.token).toBe(token);
  });

  it("retries once with forceRefresh after a refused sign-in", async () => {
    const stale = jwt(OUTLOOK_POP);
    const fresh = jwt(OUTLOOK_POP);
    const server = await serve([fresh], { messages: [{ uid: "a", source: older }] });
    const { provider, calls } = fakeAuth([stale, fresh]);
    const transport = transportFor(server, provider);
    expect((await transport.getMessage("a")).subject).toBe("older");
    expect(calls).toEqual([
      { resource: "outlook", forceRefresh: false },
      { resource: "outlook", forceRefresh: true },
    ]);
  });

  it("a sign-in Exchange throttles is THROTTLED with the back-off, without a second sign-in that would prolong it", async () => {
    const server = await serve([], {
      authFailureText: "Request is throttled. Suggested Backoff Time: 89117 milliseconds",
    });
    const { provider, calls } = fakeAuth([jwt(OUTLOOK_POP)]);
    const transport = transportFor(server, provider);
    const error = await rejection(collect(transport.listMessages()));
    expect(error.code).toBe("THROTTLED");
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(90);
    expect(calls).toHaveLength(1);
  });

  it("a Graph token is WRONG_SCOPE with the full-URI scope in the hint, without a pointless retry", async () => {
    const server = await serve([]);
    const graphToken = jwt({
      aud: "https://graph.microsoft.com",
      scp: "POP.AccessAsUser.All User.Read",
      upn: "support@contoso.com",
    });
    const { provider, calls } = fakeAuth([graphToken]);
    const transport = transportFor(server, provider);
    const error = await rejection(collect(transport.listMessages()));
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.hint).toContain("https://outlook.office.com/POP.AccessAsUser.All");
    expect(error.message).toContain("Microsoft Graph");
    expect(error.message).not.toContain(graphToken);
    expect(calls).toHaveLength(1);
  });

  it("a token without POP.AccessAsUser.All is CONSENT_REQUIRED", async () => {
    const server = await serve([]);
    const transport = transportFor(server, fakeAuth([jwt({ ...OUTLOOK_POP, scp: "SMTP.Send" })]).provider);
    const error = await rejection(transport.getMessage("x"));
    expect(error.code).toBe("CONSENT_REQUIRED");
    expect(error.hint).toContain("API permissions");
    expect(error.hint).toContain("Grant admin consent");
  });

  it("a right token refused twice names POP3 being off in Manage email apps", async () => {
    const server = await serve([]);
    const { provider, calls } = fakeAuth([jwt(OUTLOOK_POP)]);
    const transport = transportFor(server, provider);
    const error = await rejection(transport.getMessage("x"));
    expect(error.code).toBe("PROTOCOL_DISABLED");
    expect(error.hint).toContain("Manage email apps → POP3 on");
    expect(error.message).toContain("Authentication failure");
    expect(calls.map((c) => c.forceRefresh)).toEqual([false, true]);
  });

  it("a refused shared mailbox is ACCESS_DENIED pointing at Full Access", async () => {
    const server = await serve([]);
    const transport = transportFor(server, fakeAuth([jwt(OUTLOOK_POP)]).provider, {
      mailbox: "shared@contoso.com",
    });
    const error = await rejection(transport.getMessage("x"));
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.hint).toContain("Full Access");
  });

  it("takes host and port from the token provider's cloud", async () => {
    const token = jwt({ ...OUTLOOK_POP, aud: "https://outlook.office365.us" });
    const server = await serve([token]);
    const cloud: CloudPreset = { ...CLOUDS.usgovhigh, pop3: { host: "127.0.0.1", port: server.port } };
    const transport = pop3Transport({ auth: fakeAuth([token], cloud).provider, ca: server.ca });
    closers.push(() => transport.close());
    const report = await transport.verify();
    expect(report.ok).toBe(true);
  });
});

describe("verify", () => {
  it("signs in and runs STAT", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "a", source: older }] });
    const transport = transportFor(server, fakeAuth([token]).provider);
    const report = await transport.verify();
    expect(report).toMatchObject({ transport: "pop3", ok: true });
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["sign-in", true],
      ["connect", true],
      ["POP3 AUTH", true],
      ["mailbox", true],
    ]);
    expect(report.checks[3]!.detail).toContain("1 message");
    expect(server.sessions[0]!.lines).toContain("STAT");
  });

  it("reports the failing step with its typed error instead of throwing", async () => {
    const server = await serve([]);
    const transport = transportFor(
      server,
      fakeAuth([jwt({ ...OUTLOOK_POP, aud: "https://graph.microsoft.com" })]).provider,
    );
    const report = await transport.verify();
    expect(report.ok).toBe(false);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["sign-in", true],
      ["connect", true],
      ["POP3 AUTH", false],
    ]);
    expect(report.checks[2]!.error?.code).toBe("WRONG_SCOPE");
  });

  it("a mailbox the server refuses after AUTH fails verify", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], {
      override: (command) => (command === "STAT" ? "-ERR Server Unavailable. 21\r\n" : undefined),
    });
    const transport = transportFor(server, fakeAuth([token]).provider, { mailbox: "shared@contoso.com" });
    const report = await transport.verify();
    expect(report.ok).toBe(false);
    expect(report.checks.at(-1)).toMatchObject({ name: "mailbox", ok: false });
    expect(report.checks.at(-1)!.error?.code).toBe("ACCESS_DENIED");
  });
});

describe("the rest of the contract", () => {
  it("is a read-only transport named pop3 that registers with createMailbox", async () => {
    const { provider } = fakeAuth([jwt(OUTLOOK_POP)]);
    const transport = pop3Transport({ auth: provider });
    expect(transport.capabilities).toEqual({
      send: false,
      read: true,
      watch: false,
      folders: false,
      calendar: false,
    });
    const mailbox = createMailbox({ auth: provider, transports: [transport] });
    expect(mailbox.transport("pop3")).toBe(transport);
    expect((await rejection(mailbox.send({ to: "a@contoso.com", subject: "x" }))).code).toBe("NOT_SUPPORTED");
    expect((await rejection(transport.send({ to: "a@contoso.com" }))).code).toBe("NOT_SUPPORTED");
    expect(await rejection(transport.listFolders())).toMatchObject({ code: "NOT_SUPPORTED", source: "pop3" });
    expect((await rejection(transport.watch()[Symbol.asyncIterator]().next())).code).toBe("NOT_SUPPORTED");
  });

  it("defaults to outlook.office365.com:995 over implicit TLS, 110 with starttls", () => {
    const { provider } = fakeAuth([jwt(OUTLOOK_POP)]);
    expect(pop3Transport({ auth: provider }).endpoint).toEqual({
      host: "outlook.office365.com",
      port: 995,
      tls: "implicit",
      mailbox: "support@contoso.com",
    });
    expect(pop3Transport({ auth: provider, tls: "starttls" }).endpoint.port).toBe(110);
    expect(pop3Transport({ auth: { ...provider, cloud: CLOUDS.china } }).endpoint.host).toBe(
      "partner.outlook.cn",
    );
    expect(() => pop3Transport({ auth: provider, tls: "none" as never })).toThrow(/implicit/);
  });

  it("never logs the token", async () => {
    const token = jwt(OUTLOOK_POP);
    const server = await serve([token], { messages: [{ uid: "a", source: older }] });
    const logs: string[] = [];
    const sink = (message: string, data?: Record<string, unknown>) =>
      logs.push(message + JSON.stringify(data ?? {}));
    const transport = transportFor(server, fakeAuth([token]).provider, {
      logger: { debug: sink, info: sink, warn: sink, error: sink },
    });
    await transport.getMessage("a");
    expect(logs.some((l) => l.includes("AUTH XOAUTH2"))).toBe(true);
    const payload = token.split(".")[1]!;
    expect(logs.join("\n")).not.toContain(payload);
    expect(logs.join("\n")).not.toContain(
      Buffer.from(`user=support@contoso.com\x01auth=Bearer ${token}`).toString("base64").slice(0, 40),
    );
  });
});
