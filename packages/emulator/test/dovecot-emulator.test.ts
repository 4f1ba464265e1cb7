import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { needs } from "@m365-mail/test-helpers";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_CLIENT_ID, DEMO_PASSWORD } from "../src/default-directory.js";
import { dovecotPart, EXCHANGE_IMAP_CAPABILITY, findDovecot } from "../src/dovecot/index.js";
import { type Emulator, startEmulator } from "../src/emulator.js";
import { createMailStore } from "../src/store/index.js";

// In CI a missing Dovecot fails this file with the install command; locally the suite skips.
const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);
const SUPPORT = "support@contoso.com";

let dataDir: string;
let emulator: Emulator;

/** A password grant against the emulator's Entra part (plain HTTPS, trusting its CA). */
function tokenFor(username: string, scope: string): Promise<string> {
  const body = new URLSearchParams({
    client_id: DEMO_CLIENT_ID,
    grant_type: "password",
    username,
    password: DEMO_PASSWORD,
    scope,
  }).toString();
  return new Promise((done, fail) => {
    const req = request(
      `${emulator.authority}/oauth2/v2.0/token`,
      {
        method: "POST",
        ca: emulator.caPem,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () => {
          const json = JSON.parse(text) as { access_token?: string; error_description?: string };
          if (json.access_token) done(json.access_token);
          else fail(new Error(json.error_description ?? text));
        });
      },
    );
    req.on("error", fail);
    req.end(body);
  });
}

function imap(user: string, accessToken: string): ImapFlow {
  return new ImapFlow({
    host: "127.0.0.1",
    port: Number(emulator.env().M365_IMAP_PORT),
    secure: true,
    tls: { ca: [emulator.caPem] },
    auth: { user, accessToken },
    logger: false,
  });
}

/** A line-level TLS client for the raw answers (IMAP BYE texts, POP3 -ERR texts) that libraries hide. */
class LineClient {
  private buffer = "";
  private waiters: (() => void)[] = [];
  closed = false;
  private constructor(private readonly socket: TLSSocket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }
  static async open(port: number): Promise<LineClient> {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca: [emulator.caPem], servername: "localhost" });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    return new LineClient(socket);
  }
  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }
  /** The next line that matches, within `ms`; undefined when the connection closed first. */
  async waitFor(pattern: RegExp, ms = 5000): Promise<string | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const lines = this.buffer.split("\r\n");
      for (let i = 0; i < lines.length - 1; i++) {
        if (pattern.test(lines[i]!)) {
          this.buffer = lines.slice(i + 1).join("\r\n");
          return lines[i];
        }
      }
      if (this.closed) return undefined;
      if (Date.now() > deadline)
        throw new Error(`no line matching ${pattern} within ${ms} ms: ${this.buffer}`);
      await new Promise<void>((wake) => {
        this.waiters.push(wake);
        setTimeout(wake, 100);
      });
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

const xoauth2 = (user: string, token: string) =>
  Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString("base64");

describe.skipIf(dovecotMissing)("dovecotPart in the emulator", { timeout: 15_000 }, () => {
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "m365-dovecot-emu-"));
    emulator = await startEmulator({ dataDir, parts: [dovecotPart()] });
  }, 30_000);

  afterAll(async () => {
    await emulator?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("announces its ports in the cloud preset and the environment", () => {
    expect(emulator.parts.dovecot?.skipped).toBeUndefined();
    expect(emulator.cloud.imap.port).toBe(Number(emulator.env().M365_IMAP_PORT));
    expect(emulator.cloud.pop3.port).toBe(Number(emulator.env().M365_POP3_PORT));
  });

  it("accepts an Outlook IMAP token from the password grant and serves the user's mail", async () => {
    await createMailStore({ root: dataDir }).deliver(
      SUPPORT,
      "inbox",
      Buffer.from(`From: a@fabrikam.com\r\nTo: ${SUPPORT}\r\nSubject: Ticket 42\r\n\r\nHello\r\n`),
    );
    const client = imap(SUPPORT, await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All"));
    await client.connect();
    try {
      const mailbox = await client.mailboxOpen("INBOX");
      expect(mailbox.exists).toBe(1);
      const message = await client.fetchOne("*", { envelope: true });
      expect(message ? message.envelope?.subject : undefined).toBe("Ticket 42");
    } finally {
      await client.logout();
    }
  });

  it("answers as Exchange does: no capabilities in the greeting or the sign-in answer, Exchange's extensions only", async () => {
    const exchange = EXCHANGE_IMAP_CAPABILITY.split(" ").sort();
    const withoutAuth = (list: Iterable<string>) => [...list].filter((c) => !c.startsWith("AUTH=")).sort();
    const token = await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All");
    const raw = await LineClient.open(emulator.cloud.imap.port);
    try {
      // Exchange's greeting carries no [CAPABILITY …] code: clients ask.
      expect(await raw.waitFor(/^\* OK/)).toBe("* OK The Microsoft Exchange IMAP4 service is ready.");
      raw.send("a1 CAPABILITY");
      const preLogin = (await raw.waitFor(/^\* CAPABILITY /))!.split(" ").slice(2);
      // LOGINDISABLED too: no password login, as outlook.office365.com advertised it in 2026-09.
      expect(withoutAuth(preLogin)).toEqual([...exchange, "LOGINDISABLED"].sort());
      // XOAUTH2 alone: no OAUTHBEARER, which imapflow and curl would otherwise pick.
      expect(preLogin.filter((c) => c.startsWith("AUTH="))).toEqual(["AUTH=XOAUTH2"]);
      await raw.waitFor(/^a1 OK/);
      raw.send(
        `a9 AUTHENTICATE OAUTHBEARER ${Buffer.from(`n,a=${SUPPORT},\x01auth=Bearer ${token}\x01\x01`).toString("base64")}`,
      );
      expect(await raw.waitFor(/^a9 /)).toMatch(/^a9 NO /);
      raw.send(`a2 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await raw.waitFor(/^a2 /)).toBe("a2 OK AUTHENTICATE completed.");
    } finally {
      raw.close();
    }
    // After sign-in, as imapflow sees it: nothing to ENABLE, so no CONDSTORE path Exchange never takes.
    const client = imap(SUPPORT, token);
    await client.connect();
    try {
      expect(withoutAuth(client.capabilities.keys())).toEqual(exchange);
      expect([...(client.enabled ?? [])]).toEqual([]);
    } finally {
      await client.logout();
    }
  });

  it("refuses a Graph token (short scope name) and a user whose IMAP is switched off", async () => {
    const graphToken = await tokenFor(SUPPORT, "IMAP.AccessAsUser.All");
    const wrong = (await imap(SUPPORT, graphToken)
      .connect()
      .catch((e: unknown) => e)) as { authenticationFailed?: boolean };
    expect(wrong.authenticationFailed).toBe(true);

    const noImap = "noimap@contoso.com";
    const disabled = (await imap(
      noImap,
      await tokenFor(noImap, "https://outlook.office.com/IMAP.AccessAsUser.All"),
    )
      .connect()
      .catch((e: unknown) => e)) as { authenticationFailed?: boolean };
    expect(disabled.authenticationFailed).toBe(true);
  });

  it("ends open sessions when the admin API revokes the user's tokens", async () => {
    const client = imap(SUPPORT, await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All"));
    await client.connect();
    await client.mailboxOpen("INBOX");
    const closed = new Promise<void>((done) => client.once("close", () => done()));
    emulator.admin.revokeTokens(SUPPORT);
    await closed;
    expect(client.usable).toBe(false);
  });

  it("lets a delegate open the shared mailbox with user= the shared address", async () => {
    await createMailStore({ root: dataDir }).deliver(
      "shared@contoso.com",
      "inbox",
      Buffer.from("From: a@fabrikam.com\r\nTo: shared@contoso.com\r\nSubject: For the team\r\n\r\nHi\r\n"),
    );
    const token = await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All");
    const client = imap("shared@contoso.com", token);
    await client.connect();
    try {
      const mailbox = await client.mailboxOpen("INBOX");
      expect(mailbox.exists).toBe(1);
    } finally {
      await client.logout();
    }
    const outsider = await tokenFor("alice@contoso.com", "https://outlook.office.com/IMAP.AccessAsUser.All");
    const refused = (await imap("shared@contoso.com", outsider)
      .connect()
      .catch((e: unknown) => e)) as { authenticationFailed?: boolean };
    expect(refused.authenticationFailed).toBe(true);
  });

  it("ends a session when the token it logged in with expires, as Exchange does", async () => {
    emulator.admin.setTokenLifetime(3);
    try {
      const client = imap(
        SUPPORT,
        await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All"),
      );
      await client.connect();
      await client.mailboxOpen("INBOX");
      const closed = new Promise<number>((done) => client.once("close", () => done(Date.now())));
      const openedAt = Date.now();
      const closedAt = await closed;
      expect(closedAt - openedAt).toBeLessThan(6_000);
      expect(emulator.admin.counts()["dovecot.kick.token-expired"]).toBeGreaterThanOrEqual(1);
    } finally {
      emulator.admin.setTokenLifetime(3600);
    }
  });
  // m365-facts.md, "Exchange Online protocol behaviour": "IMAP: a session whose token expires is ended with
  // `* BYE Session invalidated - AccessTokenExpired`". Only that session: another one of the same user,
  // signed in with a token that is still valid, goes on.
  it("ends only the IMAP session whose token expired, with Exchange's BYE text", async () => {
    const port = Number(emulator.env().M365_IMAP_PORT);
    const longToken = await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All");
    emulator.admin.setTokenLifetime(3);
    let shortToken: string;
    try {
      shortToken = await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All");
    } finally {
      emulator.admin.setTokenLifetime(3600);
    }
    const expiring = await LineClient.open(port);
    const lasting = await LineClient.open(port);
    try {
      for (const [client, token] of [
        [expiring, shortToken],
        [lasting, longToken],
      ] as const) {
        await client.waitFor(/^\* OK/);
        client.send(`a1 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
        expect(await client.waitFor(/^a1 /)).toMatch(/^a1 OK/);
        client.send("a2 SELECT INBOX");
        expect(await client.waitFor(/^a2 /)).toMatch(/^a2 OK/);
      }
      const before = emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0;
      expect(await expiring.waitFor(/^\* BYE/, 8000)).toBe("* BYE Session invalidated - AccessTokenExpired");
      await expiring.waitFor(/^$/, 3000).catch(() => undefined);
      expect(expiring.closed).toBe(true);
      expect((emulator.admin.counts()["dovecot.kick.token-expired"] ?? 0) - before).toBe(1);
      lasting.send("a3 NOOP");
      expect(await lasting.waitFor(/^a3 /)).toMatch(/^a3 OK/);
      expect(lasting.closed).toBe(false);
    } finally {
      expiring.close();
      lasting.close();
    }
  });

  // bridge-and-federation-facts.md (symptoms table, row 6; the reference proxy's theme 15): Exchange answers
  // `<tag> NO Request is throttled. Suggested Backoff Time: <n> milliseconds` and clients are to wait that long.
  it("throttles IMAP as Exchange does: the session's commands, then the user's new sign-ins, until the back-off passes", async () => {
    const port = Number(emulator.env().M365_IMAP_PORT);
    const scope = "https://outlook.office.com/IMAP.AccessAsUser.All";
    const token = await tokenFor(SUPPORT, scope);
    const otherUser = "alice@contoso.com";
    const otherToken = await tokenFor(otherUser, scope);
    const backoff = /^(\S+) NO Request is throttled\. Suggested Backoff Time: (\d+) milliseconds$/;
    const counts = () => emulator.admin.counts();
    const before = counts();
    emulator.admin.armFault({ target: "imap", kind: "throttled", path: "command", retryAfterSeconds: 2 });
    const first = await LineClient.open(port);
    const second = await LineClient.open(port);
    const third = await LineClient.open(port);
    const other = await LineClient.open(port);
    try {
      await first.waitFor(/^\* OK/);
      first.send(`a1 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await first.waitFor(/^a1 /)).toMatch(/^a1 OK/);
      first.send("a2 SELECT INBOX");
      const refused = backoff.exec((await first.waitFor(/^a2 /))!);
      expect(refused?.[1]).toBe("a2");
      expect(Number(refused?.[2])).toBeGreaterThan(1000);
      expect(Number(refused?.[2])).toBeLessThanOrEqual(2000);
      // A LITERAL+ command is refused whole: its literal does not reach Dovecot as a command.
      first.send("a3 APPEND INBOX {11+}\r\na4 NOOP x");
      expect(await first.waitFor(/^a3 /)).toMatch(backoff);
      first.send("a5 NOOP");
      expect(await first.waitFor(/^a5 /)).toMatch(backoff);

      // The user's new sign-ins, in either form, are throttled too; another user's are not.
      await second.waitFor(/^\* OK/);
      second.send(`b1 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await second.waitFor(/^b1 /)).toMatch(backoff);
      await third.waitFor(/^\* OK/);
      third.send("c1 AUTHENTICATE XOAUTH2");
      await third.waitFor(/^\+/);
      third.send(xoauth2(SUPPORT, token));
      expect(await third.waitFor(/^c1 /)).toMatch(backoff);
      await other.waitFor(/^\* OK/);
      other.send(`d1 AUTHENTICATE XOAUTH2 ${xoauth2(otherUser, otherToken)}`);
      expect(await other.waitFor(/^d1 /)).toMatch(/^d1 OK/);
      expect((counts()["imap.throttled.command"] ?? 0) - (before["imap.throttled.command"] ?? 0)).toBe(3);
      expect((counts()["imap.throttled.login"] ?? 0) - (before["imap.throttled.login"] ?? 0)).toBe(2);

      // Once the back-off has passed, the same session works and the user signs in again.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      first.send("a6 SELECT INBOX");
      expect(await first.waitFor(/^a6 /)).toMatch(/^a6 OK/);
      third.send(`c2 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await third.waitFor(/^c2 /)).toMatch(/^c2 OK/);
    } finally {
      for (const client of [first, second, third, other]) client.close();
      emulator.admin.clearFaults();
    }
  });

  it("a throttled fault without a path throttles the next IMAP sign-in; a fault of another kind for IMAP is refused", async () => {
    const port = Number(emulator.env().M365_IMAP_PORT);
    const token = await tokenFor(SUPPORT, "https://outlook.office.com/IMAP.AccessAsUser.All");
    expect(() => emulator.admin.armFault({ target: "imap", kind: "status500" })).toThrow(
      /"throttled" goes with target "imap"/,
    );
    emulator.admin.armFault({ target: "imap", kind: "throttled", retryAfterSeconds: 1 });
    const client = await LineClient.open(port);
    try {
      await client.waitFor(/^\* OK/);
      client.send(`a1 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await client.waitFor(/^a1 /)).toMatch(
        /^a1 NO Request is throttled\. Suggested Backoff Time: \d+ milliseconds$/,
      );
      await new Promise((resolve) => setTimeout(resolve, 1100));
      client.send(`a2 AUTHENTICATE XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await client.waitFor(/^a2 /)).toMatch(/^a2 OK/);
    } finally {
      client.close();
    }
  });

  // m365-facts.md, "SASL strings": POP3 is `AUTH XOAUTH2` then the string on the next line; Exchange
  // answers the one-line form `AUTH XOAUTH2 <b64>` with `-ERR Protocol error` (as transport-pop3 notes).
  it("POP3 offers SASL XOAUTH2 alone, refuses the one-line AUTH XOAUTH2 with -ERR Protocol error; the two-step form signs in", async () => {
    const token = await tokenFor(SUPPORT, "https://outlook.office.com/POP.AccessAsUser.All");
    const pop3 = await LineClient.open(Number(emulator.env().M365_POP3_PORT));
    try {
      await pop3.waitFor(/^\+OK/);
      pop3.send("CAPA");
      const capa: string[] = [];
      for (
        let line = await pop3.waitFor(/./);
        line !== undefined && line !== ".";
        line = await pop3.waitFor(/./)
      )
        capa.push(line);
      expect(capa.filter((l) => l.startsWith("SASL"))).toEqual(["SASL XOAUTH2"]);
      pop3.send(`AUTH XOAUTH2 ${xoauth2(SUPPORT, token)}`);
      expect(await pop3.waitFor(/^[-+]/)).toBe("-ERR Protocol error");
      pop3.send("AUTH XOAUTH2");
      expect(await pop3.waitFor(/^[-+]/)).toMatch(/^\+ ?$/);
      pop3.send(xoauth2(SUPPORT, token));
      expect(await pop3.waitFor(/^[-+]/)).toMatch(/^\+OK/);
      pop3.send("STAT");
      expect(await pop3.waitFor(/^[-+]/)).toMatch(/^\+OK \d+ \d+/);
    } finally {
      pop3.close();
    }
  });
});
