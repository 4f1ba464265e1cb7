import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { encodeXOAuth2 } from "@m365-mail/core";
import { needs } from "@m365-mail/test-helpers";
import { ImapFlow } from "imapflow";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TlsMaterial } from "../src/context.js";
import { type DovecotServer, findDovecot, startDovecot } from "../src/dovecot/index.js";
import { createMailStore, type MailStore } from "../src/store/index.js";
import { ensureTlsMaterial } from "../src/tls.js";

// In CI a missing Dovecot fails this file with the install command; locally the suite skips with a notice.
const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);

const ALICE = "alice@contoso.com";
const SUPPORT = "support@contoso.com";
const SHARED = "shared@contoso.com";
const mime = (subject: string, to = ALICE) =>
  Buffer.from(
    `From: bob@fabrikam.com\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${randomBytes(6).toString("hex")}@fabrikam.com>\r\n\r\nHello ${subject}\r\n`,
  );

/** The introspection endpoint Dovecot calls: RFC 7662 answers for the tokens a test hands out. */
interface Grant {
  upn: string;
  active: boolean;
  mailboxes?: string[];
}
const grants = new Map<string, Grant>();
const introspections: { path: string; service: string | undefined }[] = [];
function issue(upn: string, extra: Partial<Grant> = {}): string {
  const token = `tok-${randomBytes(24).toString("base64url")}`;
  grants.set(token, { upn, active: true, ...extra });
  return token;
}

let dataDir: string;
let tls: TlsMaterial;
let introspection: Server;
let store: MailStore;
let dovecot: DovecotServer;

async function startIntrospection(): Promise<number> {
  introspection = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      introspections.push({
        path: req.url ?? "",
        service: req.headers["x-dovecot-auth-service"] as string | undefined,
      });
      const grant = grants.get(new URLSearchParams(body).get("token") ?? "");
      res.setHeader("content-type", "application/json");
      if (!grant?.active) {
        res.end(JSON.stringify({ active: false }));
        return;
      }
      const mailboxes = grant.mailboxes ?? [grant.upn];
      res.end(
        JSON.stringify({
          active: true,
          username: grant.upn,
          upn: grant.upn,
          mailboxes: `,${mailboxes.join(",")},`,
        }),
      );
    });
  });
  await new Promise<void>((done) => introspection.listen(0, "127.0.0.1", done));
  const address = introspection.address();
  return typeof address === "object" && address ? address.port : 0;
}

function imap(user: string, accessToken: string): ImapFlow {
  return new ImapFlow({
    host: "127.0.0.1",
    port: dovecot.imapPort,
    secure: true,
    tls: { ca: [tls.caPem] },
    auth: { user, accessToken },
    logger: false,
  });
}

/** A line-at-a-time POP3 client: enough for AUTH XOAUTH2, STAT, RETR. */
class Pop3 {
  private buffer = "";
  private waiters: (() => void)[] = [];
  constructor(private socket: TLSSocket | Socket) {
    this.attach(socket);
  }
  private attach(socket: TLSSocket | Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }
  static async open(port: number, secure: boolean): Promise<Pop3> {
    const socket = secure
      ? tlsConnect({ host: "127.0.0.1", port, ca: [tls.caPem] })
      : netConnect({ host: "127.0.0.1", port });
    await new Promise((done, fail) => {
      socket.once(secure ? "secureConnect" : "connect", done);
      socket.once("error", fail);
    });
    return new Pop3(socket);
  }
  async upgrade(): Promise<void> {
    const secure = tlsConnect({ socket: this.socket as Socket, servername: "localhost", ca: [tls.caPem] });
    await new Promise((done, fail) => {
      secure.once("secureConnect", done);
      secure.once("error", fail);
    });
    this.buffer = "";
    this.attach(secure);
  }
  /** Reads one reply: a single line, or up to "." for multi-line replies. */
  async read(multiline = false): Promise<string> {
    for (;;) {
      const end = multiline ? this.buffer.indexOf("\r\n.\r\n") : this.buffer.indexOf("\r\n");
      const firstLine = this.buffer.slice(0, this.buffer.indexOf("\r\n"));
      if (end !== -1 || (multiline && firstLine.startsWith("-ERR"))) {
        const cut = multiline && !firstLine.startsWith("-ERR") ? end + 5 : this.buffer.indexOf("\r\n") + 2;
        const reply = this.buffer.slice(0, cut);
        this.buffer = this.buffer.slice(cut);
        return reply;
      }
      await new Promise<void>((wake) => this.waiters.push(wake));
    }
  }
  async command(line: string, multiline = false): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.read(multiline);
  }
  close(): void {
    this.socket.destroy();
  }
}

describe.skipIf(dovecotMissing)("Dovecot over the mailbox store", { timeout: 15_000 }, () => {
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "m365-dovecot-"));
    tls = await ensureTlsMaterial({ dataDir });
    const port = await startIntrospection();
    store = createMailStore({ root: dataDir });
    dovecot = await startDovecot({
      dataDir,
      store,
      introspectionUrl: (protocol) => `https://127.0.0.1:${port}/introspect/${protocol}`,
      tls,
      pop3StartTlsPort: 0,
      lmtpPort: 0,
      masterUser: { username: "emulator", password: "master-secret-123" },
    });
  }, 30_000);

  afterAll(async () => {
    await dovecot?.stop();
    await new Promise((done) => introspection?.close(done));
    await rm(dataDir, { recursive: true, force: true });
  });

  it("serves mail the store delivered over IMAP XOAUTH2; flags set there show in the store under the same id", async () => {
    const delivered = await store.deliver(ALICE, "inbox", mime("Over IMAP"));
    const client = imap(ALICE, issue(ALICE));
    await client.connect();
    try {
      const lock = await client.getMailboxLock("INBOX");
      try {
        const fetched = await client.fetchOne("*", { envelope: true, flags: true });
        expect(fetched ? fetched.envelope?.subject : undefined).toBe("Over IMAP");
        await client.messageFlagsAdd("*", ["\\Seen", "\\Flagged"]);
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
    const [listed] = await store.list(ALICE, "inbox");
    expect(listed).toMatchObject({ id: delivered.id, seen: true, flagged: true });
    expect(listed!.filename).not.toBe(delivered.filename);
    expect((await store.read(ALICE, delivered.id)).raw.toString()).toContain("Subject: Over IMAP");
    expect(introspections.at(-1)).toMatchObject({ path: "/introspect/imap", service: "imap" });
  });

  it("lists Exchange's folders with special-use flags, and folders the store creates later", async () => {
    const client = imap(ALICE, issue(ALICE));
    await client.connect();
    try {
      const before = await client.list();
      const byPath = new Map(before.map((m) => [m.path, m.specialUse]));
      expect(byPath.get("Sent Items")).toBe("\\Sent");
      expect(byPath.get("Deleted Items")).toBe("\\Trash");
      expect(byPath.get("Junk Email")).toBe("\\Junk");
      expect(byPath.get("Drafts")).toBe("\\Drafts");
      expect(byPath.has("INBOX")).toBe(true);
      await store.createFolder(ALICE, "Inbox/Receipts");
      await store.deliver(ALICE, "Inbox/Receipts", mime("Receipt 1"));
      const after = await client.list();
      expect(after.map((m) => m.path)).toContain("INBOX/Receipts");
      const status = await client.status("INBOX/Receipts", { messages: true });
      expect(status ? status.messages : undefined).toBe(1);
    } finally {
      await client.logout();
    }
  });

  it("keeps ids resolvable when a message is moved over IMAP; a copy gets its own id", async () => {
    const toMove = await store.deliver(ALICE, "inbox", mime("Move me"));
    const toCopy = await store.deliver(ALICE, "inbox", mime("Copy me"));
    const client = imap(ALICE, issue(ALICE));
    await client.connect();
    try {
      const lock = await client.getMailboxLock("INBOX");
      try {
        const move = await client.search({ subject: "Move me" }, { uid: true });
        const copy = await client.search({ subject: "Copy me" }, { uid: true });
        expect([move, copy].map((found) => (found as number[]).length)).toEqual([1, 1]);
        await client.messageMove(move as number[], "Archive", { uid: true });
        await client.messageCopy(copy as number[], "Drafts", { uid: true });
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
    // Dovecot keeps the file name on MOVE: the old id finds the message, which has a new id there.
    const moved = await store.get(ALICE, toMove.id);
    expect(moved.folderPath).toBe("Archive");
    expect(moved.id).not.toBe(toMove.id);
    expect((await store.list(ALICE, "archive")).map((m) => m.id)).toContain(moved.id);
    const [copied] = await store.list(ALICE, "drafts");
    expect(copied!.id).not.toBe(toCopy.id);
    expect((await store.get(ALICE, toCopy.id)).folderPath).toBe("Inbox");
  });

  it("shows a draft the store rewrote with its new content to an open IMAP session", async () => {
    const draft = await store.deliver(ALICE, "drafts", mime("Draft v1"), { draft: true });
    const client = imap(ALICE, issue(ALICE));
    await client.connect();
    try {
      const subjects = async () => {
        const lock = await client.getMailboxLock("Drafts");
        try {
          const out: string[] = [];
          for await (const message of client.fetch("1:*", { envelope: true }))
            out.push(message.envelope?.subject ?? "");
          return out;
        } finally {
          lock.release();
        }
      };
      expect(await subjects()).toContain("Draft v1");
      await store.replace(ALICE, draft.id, mime("Draft v2"));
      await client.noop(); // clients learn of changes at their next command (NOOP/IDLE)
      const after = await subjects();
      expect(after).toContain("Draft v2");
      expect(after).not.toContain("Draft v1");
    } finally {
      await client.logout();
    }
  });

  it("serves POP3 over implicit TLS with AUTH XOAUTH2", async () => {
    const upn = "pop@contoso.com";
    await store.deliver(upn, "inbox", mime("Pop one", upn));
    await store.deliver(upn, "inbox", mime("Pop two", upn));
    const pop = await Pop3.open(dovecot.pop3Port, true);
    try {
      expect(await pop.read()).toMatch(/^\+OK The Microsoft Exchange POP3 service is ready/);
      expect(await pop.command("AUTH XOAUTH2")).toMatch(/^\+ ?/);
      expect(await pop.command(encodeXOAuth2(upn, issue(upn)))).toMatch(/^\+OK/);
      expect(await pop.command("STAT")).toMatch(/^\+OK 2 \d+/);
      const retr = await pop.command("RETR 1", true);
      expect(retr).toMatch(/^\+OK/);
      expect(retr).toMatch(/Subject: Pop (one|two)/);
      await pop.command("QUIT");
    } finally {
      pop.close();
    }
    expect(introspections.at(-1)).toMatchObject({ path: "/introspect/pop3", service: "pop3" });
  });

  it("offers STLS on the plain POP3 port", async () => {
    const upn = "stls@contoso.com";
    await store.deliver(upn, "inbox", mime("Via STLS", upn));
    const pop = await Pop3.open(dovecot.pop3StartTlsPort!, false);
    try {
      await pop.read();
      expect(await pop.command("CAPA", true)).toMatch(/\r\nSTLS\r\n/);
      expect(await pop.command("STLS")).toMatch(/^\+OK/);
      await pop.upgrade();
      await pop.command("AUTH XOAUTH2");
      expect(await pop.command(encodeXOAuth2(upn, issue(upn)))).toMatch(/^\+OK/);
      expect(await pop.command("STAT")).toMatch(/^\+OK 1 /);
    } finally {
      pop.close();
    }
  });

  it("refuses an inactive token: IMAP NO, POP3 -ERR", async () => {
    const revoked = issue(ALICE, { active: false });
    const client = imap(ALICE, revoked);
    const error = (await client.connect().catch((e: unknown) => e)) as {
      authenticationFailed?: boolean;
      responseText?: string;
    };
    expect(error.authenticationFailed).toBe(true);
    expect(error.responseText).toMatch(/Authentication failed/i);

    const pop = await Pop3.open(dovecot.pop3Port, true);
    try {
      await pop.read();
      await pop.command("AUTH XOAUTH2");
      const reply = await pop.command(encodeXOAuth2(ALICE, revoked));
      // Dovecot may first send an error challenge ("+ <base64 JSON>"); an empty line ends it.
      const final = reply.startsWith("+") ? await pop.command("") : reply;
      expect(final).toMatch(/^-ERR/);
    } finally {
      pop.close();
    }
  });

  it("refuses a token of one user for another user's mailbox", async () => {
    const client = imap(SUPPORT, issue(ALICE));
    const error = (await client.connect().catch((e: unknown) => e)) as { authenticationFailed?: boolean };
    expect(error.authenticationFailed).toBe(true);
  });

  it("opens a shared mailbox with a delegate's token (user= is the shared mailbox)", async () => {
    await store.deliver(SHARED, "inbox", mime("For the team", SHARED));
    const client = imap(SHARED, issue(SUPPORT, { mailboxes: [SUPPORT, SHARED] }));
    await client.connect();
    try {
      const mailbox = await client.mailboxOpen("INBOX");
      expect(mailbox.exists).toBe(1);
    } finally {
      await client.logout();
    }
    const outsider = imap(SHARED, issue(ALICE, { mailboxes: [ALICE] }));
    const error = (await outsider.connect().catch((e: unknown) => e)) as { authenticationFailed?: boolean };
    expect(error.authenticationFailed).toBe(true);
  });

  it("kick ends a user's open IMAP session", async () => {
    const client = imap(ALICE, issue(ALICE));
    await client.connect();
    await client.mailboxOpen("INBOX");
    const closed = new Promise<void>((done) => client.once("close", () => done()));
    expect(await dovecot.kick(ALICE)).toBe(true);
    await closed;
    expect(client.usable).toBe(false);
    expect(await dovecot.kick("nobody@contoso.com")).toBe(false);
  });

  it("delivers through LMTP into the same Maildir", async () => {
    const transport = nodemailer.createTransport({
      lmtp: true,
      host: "127.0.0.1",
      port: dovecot.lmtpPort!,
      tls: { ca: [tls.caPem] },
    });
    await transport.sendMail({
      envelope: { from: "bob@fabrikam.com", to: ["lmtp@contoso.com"] },
      raw: mime("Via LMTP", "lmtp@contoso.com"),
    });
    transport.close();
    const [message] = await store.list("lmtp@contoso.com", "inbox");
    expect((await store.read("lmtp@contoso.com", message!.id)).raw.toString()).toContain("Subject: Via LMTP");
  });

  it("lets the master user open any mailbox with PLAIN", async () => {
    const client = new ImapFlow({
      host: "127.0.0.1",
      port: dovecot.imapPort,
      secure: true,
      tls: { ca: [tls.caPem] },
      auth: { user: `${ALICE}*emulator`, pass: "master-secret-123" },
      logger: false,
    });
    await client.connect();
    try {
      const status = await client.status("INBOX", { messages: true });
      expect(status ? status.messages : 0).toBeGreaterThan(0);
    } finally {
      await client.logout();
    }
  });
});
