/**
 * The IMAP listener's limits, each ending with a clean answer and a close: an over-long line, an
 * over-large literal, too many connections per client and in total, a client not on the allowlist,
 * the login timeout, the idle timeout after login, STARTTLS with injected commands, and shutdown.
 */
import { type AddressInfo, createServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { freePort } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor, FrontDoorLimits } from "../src/front-door.js";
import { startImapFrontDoor } from "../src/imap/imap-front-door.js";
import {
  closeAll,
  dovecotMissing,
  type FrontDoorSetup,
  frontDoorOptions,
  RawClient,
  type RelayEnv,
  SUPPORT,
  sleep,
  startRelayEnv,
  waitForRecord,
} from "./relay-helpers.js";

const PASSWORD = "Demo-Passw0rd!";

describe.skipIf(dovecotMissing)("IMAP front door limits", () => {
  let env: RelayEnv;
  const doors: FrontDoor[] = [];
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-limits-");
  });
  afterAll(async () => {
    await closeAll(doors);
    await env?.stop();
  });

  const door = async (limits: Partial<FrontDoorLimits>, setup: Partial<FrontDoorSetup> = {}) => {
    const started = await startImapFrontDoor(
      frontDoorOptions(env, "imap", { security: "plain", ...setup, limits }),
    );
    doors.push(started);
    return started;
  };
  const greeted = async (d: FrontDoor, options: Parameters<typeof RawClient.open>[1] = {}) => {
    const client = await RawClient.open(d.address.port, options);
    await client.until(/\r\n/);
    return client;
  };

  it("a command line over maxLineBytes: * BYE [TOOBIG] and the connection closes", async () => {
    const d = await door({ maxLineBytes: 1024 });
    const client = await greeted(d);
    client.send(`a LOGIN ${"x".repeat(3000)}`);
    await client.until(/^\* BYE \[TOOBIG\] .*\r\n/m);
    await client.waitClosed();
    await waitForRecord(env, { result: "refused", errorCode: "line-too-long" });
  });

  it("a literal over maxLiteralBytes: BAD [TOOBIG], BYE, closed — before any of its bytes are read", async () => {
    const d = await door({ maxLiteralBytes: 100 });
    const client = await greeted(d);
    client.send("a LOGIN {5000}\r\n");
    await client.until(/^a BAD \[TOOBIG\] .*\r\n\* BYE .*\r\n/m);
    await client.waitClosed();
  });

  it("a refused command's LITERAL+ bytes are dropped with it, never run as a command of their own", async () => {
    const d = await door({});
    const client = await greeted(d);
    // The 20 bytes of the literal would be a LOGIN; the line after them ends command a.
    const smuggled = `x LOGIN ${SUPPORT} ${PASSWORD}\r\n`;
    client.send(`a LOGIN "bad\\q" {${Buffer.byteLength(smuggled)}+}\r\n${smuggled}rest of a\r\nz NOOP\r\n`);
    await client.until(/^z OK .*\r\n/m);
    expect(client.text).toMatch(/^a BAD Invalid escape/m);
    expect(client.text).not.toMatch(/^x /m);
    expect(client.text).not.toContain(PASSWORD);
    client.close();
  });

  it("more connections from one client than maxConnectionsPerIp: the extra one gets * BYE [UNAVAILABLE]", async () => {
    const d = await door({ maxConnectionsPerIp: 2 });
    const first = await greeted(d);
    const second = await greeted(d);
    const third = await RawClient.open(d.address.port);
    await third.until(/^\* BYE \[UNAVAILABLE\] Too many connections.*\r\n/m);
    await third.waitClosed();
    expect(first.text).toMatch(/^\* OK /);
    expect(second.text).toMatch(/^\* OK /);
    // Another client address still gets in; once one closes, the first address may connect again.
    const other = await greeted(d, { localAddress: "127.0.0.2" });
    expect(other.text).toMatch(/^\* OK /);
    first.close();
    await sleep(100);
    const again = await greeted(d);
    expect(again.text).toMatch(/^\* OK /);
    for (const c of [second, other, again]) c.close();
  });

  it("more connections in total than maxConnections: * BYE [UNAVAILABLE]", async () => {
    const d = await door({ maxConnections: 2 });
    const a = await greeted(d, { localAddress: "127.0.0.3" });
    const b = await greeted(d, { localAddress: "127.0.0.4" });
    const c = await RawClient.open(d.address.port, { localAddress: "127.0.0.5" });
    await c.until(/^\* BYE \[UNAVAILABLE\] .*\r\n/m);
    await c.waitClosed();
    // The refused one is counted until the bridge has seen its close too.
    for (let i = 0; i < 50 && d.openSessions > 2; i++) await sleep(20);
    expect(d.openSessions).toBe(2);
    a.close();
    b.close();
  });

  it("a client the allowlist refuses gets a BYE and the close, also over implicit TLS", async () => {
    const allowed = (address: string) => address === "127.0.0.1";
    const d = await door({}, { isClientAllowed: allowed });
    const refused = await RawClient.open(d.address.port, { localAddress: "127.0.0.6" });
    await refused.until(/^\* BYE .*not allowed.*\r\n/m);
    await refused.waitClosed();
    const ok = await greeted(d);
    expect(ok.text).toMatch(/^\* OK /);
    ok.close();
    const tls = await door({}, { isClientAllowed: allowed, security: "tls" });
    const refusedTls = await RawClient.open(tls.address.port, {
      tls: true,
      ca: env.emulator.caPem,
      localAddress: "127.0.0.6",
    });
    await refusedTls.until(/^\* BYE .*not allowed.*\r\n/m);
    await refusedTls.waitClosed();
    const fromRefusedHost = () => env.records.filter((r) => r.client.startsWith("127.0.0.6:"));
    await expect
      .poll(() => fromRefusedHost().map((r) => r.result), { timeout: 5000 })
      .toEqual(["refused", "refused"]);
  });

  it("no login within loginTimeoutMs: * BYE and closed, recorded as a timeout", async () => {
    const d = await door({ loginTimeoutMs: 600 });
    const client = await greeted(d);
    const started = Date.now();
    client.send("a NOOP\r\n");
    await client.until(/^\* BYE Disconnected: no login.*\r\n/m, 5000);
    await client.waitClosed();
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    await waitForRecord(env, { result: "timeout", errorCode: "login-timeout" });
  });

  it("idle after login longer than idleTimeoutMs: the relayed session is closed", async () => {
    const d = await door({ idleTimeoutMs: 1500 });
    const client = await greeted(d);
    client.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
    await client.until(/^a OK .*\r\n/m);
    const loggedIn = Date.now();
    await client.waitClosed(6000);
    expect(Date.now() - loggedIn).toBeGreaterThanOrEqual(1300);
    await waitForRecord(env, { result: "timeout", errorCode: "idle", account: SUPPORT });
  });

  it("commands sent in plain text behind STARTTLS are refused and the connection closed", async () => {
    const d = await door({}, { security: "starttls" });
    const client = await greeted(d);
    client.send(`a STARTTLS\r\nb LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
    await client.until(/^a BAD .*\r\n/m);
    await client.waitClosed();
  });

  it("before STARTTLS, a LOGIN literal is refused, not asked for: the password is never invited in clear", async () => {
    const d = await door({}, { security: "starttls" });
    const client = await greeted(d);
    client.send(`a LOGIN ${SUPPORT} {${PASSWORD.length}}\r\n`);
    await client.until(/^a NO \[PRIVACYREQUIRED\] .*\r\n/m);
    expect(client.text).not.toContain("+ Ready");
    client.send("b NOOP\r\n");
    await client.until(/^b OK .*\r\n/m);
    client.close();
  });

  it("ten invalid commands before login end the session", async () => {
    const d = await door({});
    const client = await greeted(d);
    for (let i = 0; i < 10; i++) client.send(`t${i} FETCH 1:* BODY[]\r\n`);
    await client.until(/^\* BYE Too many invalid commands\.\r\n/m);
    await client.waitClosed();
  });

  it("close(): a client still logging in gets * BYE; a relayed session is given drainMs, then closed", async () => {
    const d = await startImapFrontDoor(frontDoorOptions(env, "imap", { security: "plain" }));
    const waiting = await greeted(d);
    const relayed = await greeted(d);
    relayed.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\nb SELECT INBOX\r\n`);
    await relayed.until(/^b OK .*\r\n/m);
    const started = Date.now();
    const closing = d.close({ drainMs: 800 });
    await waiting.until(/^\* BYE \[UNAVAILABLE\] Server shutting down\.\r\n/m);
    await waiting.waitClosed();
    // The relayed client can still work while the bridge drains.
    const mark = relayed.text.length;
    relayed.send("c NOOP\r\n");
    await relayed.until(/^c OK .*\r\n/m, 2000, mark);
    await closing;
    await relayed.waitClosed(2000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(d.openSessions).toBe(0);
    await expect(RawClient.open(d.address.port)).rejects.toThrow();
  });

  it("Microsoft 365 unreachable: NO [UNAVAILABLE], the session stays usable, recorded as upstream-failed", async () => {
    const options = frontDoorOptions(env, "imap", { security: "plain" });
    const closedPort = await freePort();
    const d = await startImapFrontDoor({ ...options, upstream: { ...options.upstream!, port: closedPort } });
    doors.push(d);
    const client = await greeted(d);
    client.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
    const answer = await client.until(/^a (OK|NO|BAD) .*\r\n/m);
    expect(answer).toMatch(/^a NO \[UNAVAILABLE\] .*ECONNREFUSED/m);
    // IMAP4rev1 replies are US-ASCII: the hint's dashes and arrows are spelled in ASCII.
    expect(answer).toMatch(/^[\x20-\x7e\r\n]*$/);
    client.send("b NOOP\r\n");
    await client.until(/^b OK .*\r\n/m);
    client.send("c LOGOUT\r\n");
    await client.waitClosed();
    await waitForRecord(env, { result: "upstream-failed", errorCode: "CONNECTION_FAILED" });
  });

  it("Microsoft 365 silent (connects, never answers): NO [UNAVAILABLE] before the login timer ends the session", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    try {
      const options = frontDoorOptions(env, "imap", { security: "plain" });
      const d = await startImapFrontDoor({
        ...options,
        limits: { ...options.limits, loginTimeoutMs: 3_000 },
        upstream: { ...options.upstream!, port: (silent.address() as AddressInfo).port },
      });
      doors.push(d);
      const client = await greeted(d);
      client.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
      const answer = await client.until(/^(a (OK|NO|BAD)|\* BYE) .*\r\n/m);
      expect(answer).toMatch(/^a NO \[UNAVAILABLE\] /m);
    } finally {
      silent.close();
    }
  });

  it("Microsoft 365 throttling the sign-in: NO [UNAVAILABLE] with the back-off, one attempt, no setting blamed", async () => {
    // Exchange's throttling answer as IMAP clients log it (imap_tools #135, email-oauth2-proxy #191).
    let attempts = 0;
    const throttling = createTlsServer(
      { key: env.emulator.context.tls.keyPem, cert: env.emulator.context.tls.certPem },
      (socket) => {
        socket.write("* OK The Microsoft Exchange IMAP4 service is ready.\r\n");
        socket.on("data", (chunk: Buffer) => {
          const tag = /^(\S+) AUTHENTICATE /m.exec(chunk.toString("latin1"))?.[1];
          if (!tag) return;
          attempts++;
          socket.write(`${tag} NO Request is throttled. Suggested Backoff Time: 89117 milliseconds\r\n`);
        });
        socket.on("error", () => {});
      },
    );
    await new Promise<void>((r) => throttling.listen(0, "127.0.0.1", () => r()));
    try {
      const options = frontDoorOptions(env, "imap", { security: "plain" });
      const d = await startImapFrontDoor({
        ...options,
        upstream: {
          ...options.upstream!,
          host: "127.0.0.1",
          port: (throttling.address() as AddressInfo).port,
        },
      });
      doors.push(d);
      const from = env.records.length;
      const client = await greeted(d);
      client.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
      const answer = await client.until(/^(a (OK|NO|BAD)|\* BYE) .*\r\n/m);
      // "Try later" (a mail client does not ask for a new password), with how long.
      expect(answer).toMatch(/^a NO \[UNAVAILABLE\] .*throttling support@contoso\.com for about 90 s/m);
      client.close();
      const record = await waitForRecord(env, { result: "upstream-failed", errorCode: "THROTTLED" }, from);
      expect(record.account).toBe(SUPPORT);
      // No second sign-in with a refreshed token: that would only prolong the throttling.
      expect(attempts).toBe(1);
      expect(env.logLines.join("\n")).not.toMatch(/PROTOCOL_DISABLED|Manage email apps/);
    } finally {
      throttling.close();
    }
  });

  it("a client that hangs up during its login: no upstream failure is logged or recorded", async () => {
    const d = await door(
      {},
      {
        authenticate: async (username, password, client) => {
          await sleep(400);
          return env.authenticate(username, password, client);
        },
      },
    );
    const client = await greeted(d);
    const warnings = env.logLines.filter((l) => l.startsWith("warn")).length;
    const from = env.records.length;
    client.send(`a LOGIN ${SUPPORT} ${PASSWORD}\r\n`);
    await sleep(100);
    client.close();
    const record = await waitForRecord(env, {}, from);
    await sleep(600);
    expect(record.result).not.toBe("upstream-failed");
    expect(env.logLines.filter((l) => l.startsWith("warn")).length).toBe(warnings);
  });

  it("records never hold a password", () => {
    expect(env.records.length).toBeGreaterThan(10);
    expect(JSON.stringify(env.records)).not.toContain(PASSWORD);
    expect(env.logLines.join("\n")).not.toContain(PASSWORD);
  });
});
