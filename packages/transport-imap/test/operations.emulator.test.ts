import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { isM365MailError, M365MailError } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImapMessageSummary, ImapTransport } from "../src/index.js";
import {
  collect,
  deliver,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  spyProvider,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

const SUPPORT = "support@contoso.com";
const tag = () => randomBytes(4).toString("hex");

async function rejection(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof M365MailError)) throw new Error(`expected an M365MailError, got ${String(error)}`);
  return error;
}

describe.skipIf(dovecotMissing)("imap transport operations (emulator + Dovecot)", () => {
  let env: ImapEmulator;
  let imap: ImapTransport;
  beforeAll(async () => {
    env = await startImapEmulator();
    imap = transportFor(env, emulatorProvider(env.emulator));
  });
  afterAll(async () => {
    await imap?.close();
    await env?.cleanup();
  });

  const bySubject = async (subject: string, folder = "inbox"): Promise<ImapMessageSummary[]> =>
    (await collect(imap.listMessages({ folder }))).filter((m) => m.subject === subject);

  it("verify() signs in with XOAUTH2 and runs a real command", async () => {
    const report = await imap.verify();
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.detail)).toEqual([
      expect.stringMatching(/^AUTHENTICATE XOAUTH2 as support@contoso\.com at 127\.0\.0\.1:\d+$/),
      expect.stringMatching(/^EXAMINE INBOX: \d+ messages$/),
    ]);
  });

  it("signs in with XOAUTH2 even when OAUTHBEARER is asked for: Exchange (and the emulator) offer XOAUTH2 alone", async () => {
    const logPath = String(env.emulator.parts.dovecot!.logPath);
    const lastLogin = () =>
      readFileSync(logPath, "utf8")
        .split("\n")
        .filter((line) => line.includes("Login: user=<alice@contoso.com>"))
        .at(-1);
    const xoauth2 = transportFor(env, emulatorProvider(env.emulator, "alice@contoso.com"));
    const bearer = transportFor(env, emulatorProvider(env.emulator, "alice@contoso.com"), {
      saslMechanism: "OAUTHBEARER",
    });
    try {
      expect((await xoauth2.verify()).ok).toBe(true);
      expect(lastLogin()).toContain("method=XOAUTH2");
      expect((await bearer.verify()).checks[0]?.detail).toMatch(/^AUTHENTICATE XOAUTH2/);
      expect(lastLogin()).toContain("method=XOAUTH2");
    } finally {
      await xoauth2.close();
      await bearer.close();
    }
  });

  it("lists Exchange's folders with their special use", async () => {
    const folders = await imap.listFolders();
    const special = Object.fromEntries(
      folders.filter((f) => f.specialUse).map((f) => [f.specialUse, f.path]),
    );
    expect(special).toMatchObject({
      inbox: "INBOX",
      sent: "Sent Items",
      drafts: "Drafts",
      trash: "Deleted Items",
      junk: "Junk Email",
      archive: "Archive",
    });
    expect(folders.find((f) => f.specialUse === "inbox")?.totalCount).toBeTypeOf("number");
  });

  it("lists in batches newest first, each message once, with since, unreadOnly and limit", async () => {
    const t = tag();
    const start = new Date(Date.now() - 1000);
    for (let i = 0; i < 7; i++)
      await deliver(env, SUPPORT, { to: SUPPORT, subject: `batch ${t} ${i}`, text: `n${i}` });
    const small = transportFor(env, emulatorProvider(env.emulator), { fetchBatchSize: 3 });
    try {
      // The server numbers the seven when it first sees them; one delivered after that comes first.
      await collect(small.listMessages({ limit: 1 }));
      await env.store.deliver(SUPPORT, "inbox", Buffer.from(`Subject: batch ${t} read\r\n\r\nx\r\n`), {
        seen: true,
      });
      const all = (await collect(small.listMessages({ folder: "Inbox", since: start }))).filter((m) =>
        m.subject.includes(t),
      );
      expect(all[0]?.subject).toBe(`batch ${t} read`);
      expect(all.map((m) => m.subject).sort()).toEqual([
        ...[0, 1, 2, 3, 4, 5, 6].map((i) => `batch ${t} ${i}`),
        `batch ${t} read`,
      ]);
      const uids = all.map((m) => m.uid);
      expect(uids).toEqual([...uids].sort((a, b) => b - a));
      expect(new Set(all.map((m) => m.id)).size).toBe(8);
      expect(all[1]).toMatchObject({
        folder: "INBOX",
        isRead: false,
        hasAttachments: false,
        to: [{ address: SUPPORT }],
      });
      expect(all[1]!.size).toBeGreaterThan(0);
      expect(all[1]!.receivedAt!.getTime()).toBeGreaterThanOrEqual(start.getTime() - 1000);
      const unread = (await collect(small.listMessages({ unreadOnly: true, since: start }))).filter((m) =>
        m.subject.includes(t),
      );
      expect(unread).toHaveLength(7);
      expect(await collect(small.listMessages({ since: start, limit: 2 }))).toHaveLength(2);
      expect(await collect(small.listMessages({ since: new Date(Date.now() + 60_000) }))).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it("with sources, reads the same subject, addresses and Message-ID from the header as Dovecot's ENVELOPE", async () => {
    const t = tag();
    const headers = [
      [`Subject: plain ${t}`, "From: Customer <c@fabrikam.com>", "To: support@contoso.com"],
      [
        `Subject: =?UTF-8?B?VMOkc3Q=?= =?utf-8?q?_f=C3=BCr?= ${t}`,
        "From: =?iso-8859-1?q?J=F6rg?= <j@fabrikam.de>",
        'To: "Doe, John" <john@contoso.com>, k@contoso.com (Kay),',
        "  Team: a@contoso.com, B <b@contoso.com>;",
        "Cc: undisclosed-recipients:;",
      ],
      [`subject: folded\r\n ${t}`, "FROM: x@fabrikam.com", "cc: Zoë <zoe@contoso.com>"],
      [`Subject: no from ${t}`, "To: <bare@contoso.com>"],
    ];
    for (const [i, lines] of headers.entries()) {
      const raw = [...lines, `Message-ID: <oracle-${i}-${t}@fabrikam.com>`, "", `body ${i}`, ""].join("\r\n");
      await env.store.deliver(SUPPORT, "inbox", Buffer.from(raw));
    }
    const pick = (m: ImapMessageSummary) => ({
      uid: m.uid,
      subject: m.subject,
      from: m.from,
      to: m.to,
      cc: m.cc,
      internetMessageId: m.internetMessageId,
    });
    const ours = (m: ImapMessageSummary) => m.internetMessageId?.includes(t);
    const fromHeader = (await collect(imap.listMessages({ includeSource: true }))).filter(ours);
    const fromEnvelope = (await collect(imap.listMessages())).filter(ours);
    expect(fromHeader).toHaveLength(headers.length);
    expect(fromHeader.map(pick)).toEqual(fromEnvelope.map(pick));
    expect(fromHeader.every((m) => m.source && m.hasAttachments === undefined)).toBe(true);
    expect(fromEnvelope.find((m) => m.subject.startsWith("Täst"))?.to.map((a) => a.address)).toEqual([
      "john@contoso.com",
      "k@contoso.com",
      "a@contoso.com",
      "b@contoso.com",
    ]);
  });

  it("gets a message with headers and raw source, streams the same bytes, and marks it read", async () => {
    const subject = `get ${tag()}`;
    await deliver(env, SUPPORT, {
      to: SUPPORT,
      subject,
      text: "plain body",
      html: "<p>html body</p>",
      headers: { "X-Ticket": "42" },
      attachments: [{ filename: "a.bin", content: new Uint8Array([0, 1, 2, 255]) }],
    });
    const [summary] = await bySubject(subject);
    expect(summary?.hasAttachments).toBe(true);
    const message = await imap.getMessage(summary!.id);
    expect(message.text?.trim()).toBe("plain body");
    expect(message.html).toContain("<p>html body</p>");
    expect(message.headers?.["x-ticket"]).toBe("42");
    expect([...message.attachments[0]!.content]).toEqual([0, 1, 2, 255]);
    // Fetching does not mark it read (BODY.PEEK).
    expect(message.isRead).toBe(false);
    const chunks: Uint8Array[] = [];
    for await (const chunk of imap.fetchSource(summary!.id)) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(Buffer.from(message.raw))).toBe(true);

    await imap.markRead(summary!.id, true);
    expect((await bySubject(subject))[0]?.isRead).toBe(true);
    const stored = (await env.store.list(SUPPORT, "inbox")).find(
      (m) => m.size === message.raw.length && m.seen,
    );
    expect(stored).toBeDefined();
    await imap.markRead(summary!.id, false);
    expect((await bySubject(subject))[0]?.isRead).toBe(false);
  });

  it("moves with MOVE and returns the new id from COPYUID; the old id is gone", async () => {
    const subject = `move ${tag()}`;
    await deliver(env, SUPPORT, { to: SUPPORT, subject, text: "x" });
    const [summary] = await bySubject(subject);
    const newId = await imap.moveMessage(summary!.id, "archive");
    expect(newId).toMatch(/^Archive:\d+:\d+$/);
    expect((await imap.getMessage(newId)).subject).toBe(subject);
    expect(await bySubject(subject)).toEqual([]);
    expect((await rejection(imap.getMessage(summary!.id))).code).toBe("NOT_FOUND");
  });

  it("deletes like Outlook: to Deleted Items first, expunged from there", async () => {
    const subject = `delete ${tag()}`;
    await deliver(env, SUPPORT, { to: SUPPORT, subject, text: "x" });
    const [summary] = await bySubject(subject);
    await imap.deleteMessage(summary!.id);
    expect(await bySubject(subject)).toEqual([]);
    const [trashed] = await bySubject(subject, "trash");
    expect(trashed?.folder).toBe("Deleted Items");
    await imap.deleteMessage(trashed!.id);
    expect(await bySubject(subject, "trash")).toEqual([]);
    expect((await rejection(imap.deleteMessage(trashed!.id))).code).toBe("NOT_FOUND");
  });

  it("serves concurrent operations on different folders over its one shared connection", async () => {
    const t = tag();
    await deliver(env, SUPPORT, { to: SUPPORT, subject: `inbox ${t}`, text: "in inbox" });
    await deliver(env, SUPPORT, { to: SUPPORT, subject: `junk ${t}`, text: "in junk" }, "junkemail");
    const [inbox, junk, folders, sent] = await Promise.all([
      bySubject(`inbox ${t}`),
      bySubject(`junk ${t}`, "junk"),
      imap.listFolders(),
      collect(imap.listMessages({ folder: "sent", limit: 5 })),
    ]);
    expect(inbox).toHaveLength(1);
    expect(junk).toHaveLength(1);
    expect(folders.length).toBeGreaterThanOrEqual(6);
    expect(Array.isArray(sent)).toBe(true);
    const [a, b] = await Promise.all([imap.getMessage(inbox[0]!.id), imap.getMessage(junk[0]!.id)]);
    expect([a.text?.trim(), b.text?.trim()]).toEqual(["in inbox", "in junk"]);
  });

  it("an aborted operation fails with ABORTED and the next one works", async () => {
    const controller = new AbortController();
    controller.abort();
    expect((await rejection(imap.listFolders({ signal: controller.signal }))).code).toBe("ABORTED");
    const slow = new AbortController();
    const pending = collect(imap.listMessages({ folder: "inbox" }, { signal: slow.signal }));
    slow.abort();
    const outcome = await pending.then(
      () => "finished",
      (e: unknown) => (e instanceof M365MailError ? e.code : String(e)),
    );
    expect(["finished", "ABORTED"]).toContain(outcome);
    expect((await imap.listFolders()).length).toBeGreaterThan(0);
  });

  // Exchange's "Request is throttled. Suggested Backoff Time: N milliseconds" (the emulator's `throttled` fault).
  it("a throttled sign-in is THROTTLED with the back-off, after one sign-in only; after the back-off it works", async () => {
    const transport = transportFor(env, emulatorProvider(env.emulator));
    const signIns = () => env.emulator.admin.counts()["imap.authenticate"] ?? 0;
    try {
      env.emulator.admin.armFault({ target: "imap", kind: "throttled", path: "login", retryAfterSeconds: 1 });
      const before = signIns();
      const error = await rejection(collect(transport.listMessages({ limit: 1 })));
      expect(error.code).toBe("THROTTLED");
      expect(error.retryAfterSeconds).toBe(1);
      expect(signIns() - before).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await collect(transport.listMessages({ limit: 1 }));
    } finally {
      await transport.close();
    }
  });

  it("a throttled command is waited out: imapflow sleeps Exchange's back-off and the listing completes", async () => {
    const transport = transportFor(env, emulatorProvider(env.emulator));
    const throttled = () => env.emulator.admin.counts()["imap.throttled.command"] ?? 0;
    try {
      env.emulator.admin.armFault({
        target: "imap",
        kind: "throttled",
        path: "command",
        retryAfterSeconds: 1,
      });
      const before = throttled();
      const started = Date.now();
      await collect(transport.listMessages({ limit: 1 }));
      expect(throttled() - before).toBeGreaterThanOrEqual(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await transport.close();
    }
  });

  it("says which folder does not exist", async () => {
    const error = await rejection(collect(imap.listMessages({ folder: "No Such Folder" })));
    expect(error.code).toBe("NOT_FOUND");
    expect(error.message).toContain("No Such Folder");
  });

  it("rejects ids from other transports as CONFIG_INVALID", async () => {
    expect((await rejection(imap.getMessage("AAMkAGI2TG93AAA="))).code).toBe("CONFIG_INVALID");
  });

  it("reconnects transparently after the server ends the session (BYE)", async () => {
    const subject = `bye ${tag()}`;
    await deliver(env, SUPPORT, { to: SUPPORT, subject, text: "x" });
    await collect(imap.listMessages({ limit: 1 }));
    expect(await env.dovecot.kick(SUPPORT)).toBe(true);
    expect(await bySubject(subject)).toHaveLength(1);
  });

  it("renews the shared connection with a fresh token before the token expires", async () => {
    const auth = spyProvider(emulatorProvider(env.emulator));
    env.emulator.admin.setTokenLifetime(6);
    const short = transportFor(env, auth, { renewBeforeExpirySeconds: 2 });
    try {
      await collect(short.listMessages({ limit: 1 }));
      const first = auth.calls.length;
      await new Promise((resolve) => setTimeout(resolve, 4500));
      await collect(short.listMessages({ limit: 1 }));
      // A second connection was opened with a token asked for anew — not the one about to expire.
      expect(auth.calls.length).toBeGreaterThan(first);
      expect(auth.calls.every((c) => c.resource === "outlook")).toBe(true);
    } finally {
      env.emulator.admin.setTokenLifetime(3600);
      await short.close();
    }
  });

  it("never writes a token or password into its log, even at protocol level", async () => {
    const lines: string[] = [];
    const sink = (message: string, data?: Record<string, unknown>) =>
      lines.push(message + JSON.stringify(data ?? {}));
    const auth = emulatorProvider(env.emulator);
    const token = (await auth.getAccessToken("outlook")).token;
    const logged = transportFor(env, auth, {
      logger: { debug: sink, info: sink, warn: sink, error: sink },
      logProtocol: true,
    });
    try {
      await logged.verify();
      await collect(logged.listMessages({ limit: 2 }));
    } finally {
      await logged.close();
    }
    const all = lines.join("\n");
    expect(lines.length).toBeGreaterThan(10);
    expect(all).not.toContain(token);
    expect(all).not.toContain("Demo-Passw0rd!");
    expect(all).not.toMatch(/dXNlcj[A-Za-z0-9+/=]{20,}/); // base64 of "user=...auth=Bearer"
  });

  describe("sign-in refused", () => {
    it("a Graph-audience token is WRONG_SCOPE naming the prefixed scope, after one forced refresh", async () => {
      const auth = spyProvider(emulatorProvider(env.emulator), { resource: "graph" });
      const wrong = transportFor(env, auth);
      try {
        const report = await wrong.verify();
        expect(report.ok).toBe(false);
        const error = report.checks[0]!.error!;
        expect(error.code).toBe("WRONG_SCOPE");
        expect(error.hint).toContain("https://outlook.office.com/IMAP.AccessAsUser.All");
        expect(auth.calls.map((c) => c.forceRefresh)).toEqual([false, true]);
        expect((await rejection(collect(wrong.listMessages()))).code).toBe("WRONG_SCOPE");
      } finally {
        await wrong.close();
      }
    });

    it("IMAP switched off for the mailbox is PROTOCOL_DISABLED pointing at Manage email apps", async () => {
      const off = transportFor(env, emulatorProvider(env.emulator, "noimap@contoso.com"));
      try {
        const error = await rejection(collect(off.listMessages()));
        expect(error.code).toBe("PROTOCOL_DISABLED");
        expect(error.hint).toContain("Manage email apps → IMAP");
        expect(error.hint).toContain("noimap@contoso.com");
      } finally {
        await off.close();
      }
    });

    it("a missing IMAP permission is CONSENT_REQUIRED", async () => {
      const clientId = env.emulator.clientId;
      const before = env.emulator.admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
      env.emulator.admin.updateApp(clientId, { grantedPermissions: { ...before, outlook: ["SMTP.Send"] } });
      const noConsent = transportFor(env, emulatorProvider(env.emulator, "alice@contoso.com"));
      try {
        const error = await rejection(collect(noConsent.listMessages()));
        // The emulator refuses the token request itself (AADSTS65001) or IMAP refuses the token: both name consent.
        expect(error.code).toBe("CONSENT_REQUIRED");
      } finally {
        env.emulator.admin.updateApp(clientId, { grantedPermissions: before });
        await noConsent.close();
      }
    });

    it("a closed port is CONNECTION_FAILED and an untrusted certificate names `ca`", async () => {
      const auth = emulatorProvider(env.emulator);
      const closed = transportFor(env, auth, { host: "127.0.0.1", port: 1 });
      const untrusted = transportFor(env, auth, { ca: undefined });
      try {
        const refused = await rejection(collect(closed.listMessages()));
        expect(refused.code).toBe("CONNECTION_FAILED");
        expect(refused.retryable).toBe(true);
        const tls = await rejection(collect(untrusted.listMessages()));
        expect(tls.code).toBe("CONNECTION_FAILED");
        expect(tls.retryable).toBe(false);
        expect(tls.hint).toContain("`ca`");
      } finally {
        await closed.close();
        await untrusted.close();
      }
    });
  });

  describe("shared mailbox", () => {
    it("a delegate reads the shared mailbox with its own token (user= the shared address)", async () => {
      const subject = `shared ${tag()}`;
      await deliver(env, "shared@contoso.com", { to: "shared@contoso.com", subject, text: "for the team" });
      const shared = transportFor(env, emulatorProvider(env.emulator, SUPPORT), {
        mailbox: "shared@contoso.com",
      });
      try {
        const found = (await collect(shared.listMessages())).filter((m) => m.subject === subject);
        expect(found).toHaveLength(1);
        expect((await shared.getMessage(found[0]!.id)).text?.trim()).toBe("for the team");
        // Not in the delegate's own mailbox.
        expect(await bySubject(subject)).toEqual([]);
      } finally {
        await shared.close();
      }
    });

    it("a user without access to the shared mailbox gets ACCESS_DENIED naming Full Access", async () => {
      const outsider = transportFor(env, emulatorProvider(env.emulator, "alice@contoso.com"), {
        mailbox: "shared@contoso.com",
      });
      try {
        const error = await rejection(collect(outsider.listMessages()));
        expect(error.code).toBe("ACCESS_DENIED");
        expect(error.hint).toContain("Full Access");
        expect(isM365MailError(error)).toBe(true);
      } finally {
        await outsider.close();
      }
    });
  });
});
