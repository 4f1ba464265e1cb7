/**
 * The POP3 listener's limits, each ending with a clean `-ERR` and a close: an over-long line, too many
 * connections per client, the login timeout, STLS with injected commands; and a failed login that
 * leaves the session usable.
 */
import { freePort } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor, FrontDoorLimits } from "../src/front-door.js";
import { startPop3FrontDoor } from "../src/pop3/pop3-front-door.js";
import {
  closeAll,
  dovecotMissing,
  type FrontDoorSetup,
  frontDoorOptions,
  RawClient,
  type RelayEnv,
  SUPPORT,
  startRelayEnv,
  waitForRecord,
} from "./relay-helpers.js";

const PASSWORD = "Demo-Passw0rd!";

describe.skipIf(dovecotMissing)("POP3 front door limits", () => {
  let env: RelayEnv;
  const doors: FrontDoor[] = [];
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-pop3-limits-");
  });
  afterAll(async () => {
    await closeAll(doors);
    await env?.stop();
  });

  const door = async (limits: Partial<FrontDoorLimits>, setup: Partial<FrontDoorSetup> = {}) => {
    const started = await startPop3FrontDoor(
      frontDoorOptions(env, "pop3", { security: "plain", ...setup, limits }),
    );
    doors.push(started);
    return started;
  };
  const greeted = async (d: FrontDoor, localAddress?: string) => {
    const client = await RawClient.open(d.address.port, localAddress ? { localAddress } : {});
    await client.until(/\r\n/);
    return client;
  };

  it("a line over maxLineBytes: -ERR and the connection closes", async () => {
    const d = await door({ maxLineBytes: 512 });
    const client = await greeted(d);
    client.send(`USER ${"x".repeat(2000)}`);
    await client.until(/^-ERR Line too long\.\r\n/m);
    await client.waitClosed();
  });

  it("more connections from one client than maxConnectionsPerIp: -ERR [SYS/TEMP] as the greeting", async () => {
    const d = await door({ maxConnectionsPerIp: 1 });
    const first = await greeted(d);
    expect(first.text).toMatch(/^\+OK /);
    const second = await RawClient.open(d.address.port);
    await second.until(/^-ERR \[SYS\/TEMP\] Too many connections.*\r\n/m);
    await second.waitClosed();
    first.close();
  });

  it("no login within loginTimeoutMs: -ERR and closed", async () => {
    const d = await door({ loginTimeoutMs: 500 });
    const client = await greeted(d);
    await client.until(/^-ERR Disconnected: no login.*\r\n/m, 5000);
    await client.waitClosed();
    await waitForRecord(env, { protocol: "pop3", result: "timeout" });
  });

  it("commands behind STLS in the same packet are refused and the connection closed", async () => {
    const d = await door({}, { security: "starttls" });
    const client = await greeted(d);
    client.send(`STLS\r\nUSER ${SUPPORT}\r\n`);
    await client.until(/^-ERR Data after STLS\.\r\n/m);
    await client.waitClosed();
  });

  it("before STLS on a listener that needs TLS, AUTH lists no mechanism (as CAPA says) and USER is refused", async () => {
    const d = await door({}, { security: "starttls" });
    const client = await greeted(d);
    client.send("AUTH\r\n");
    await client.until(/^\+OK\r\n\.\r\n/m);
    client.send(`USER ${SUPPORT}\r\n`);
    await client.until(/^-ERR \[AUTH\] Use STLS/m);
    client.close();
  });

  it("a wrong password: -ERR [AUTH], the session stays in AUTHORIZATION; three failures close it", async () => {
    const d = await door({});
    const client = await greeted(d);
    client.send("AUTH\r\n");
    await client.until(/^\+OK\r\nPLAIN\r\n\.\r\n/m);
    for (let i = 1; i <= 2; i++) {
      const mark = client.text.length;
      client.send(`USER ${SUPPORT}\r\nPASS wrong-password-${i}0\r\n`);
      const answer = await client.until(/^-ERR .*\r\n/m, 10_000, client.text.indexOf("+OK\r\n", mark) + 5);
      expect(answer).toMatch(/-ERR \[AUTH\] /);
    }
    // Cancelled AUTH PLAIN, then the third failure.
    client.send("AUTH PLAIN\r\n");
    await client.until(/^\+ \r\n/m);
    client.send("*\r\n");
    await client.until(/^-ERR Authentication cancelled\.\r\n/m);
    client.send(`USER ${SUPPORT}\r\nPASS wrong-password-30\r\n`);
    await client.until(/^-ERR Too many failed logins\.\r\n/m);
    await client.waitClosed();
    const log = env.logLines.join("\n");
    expect(log).not.toContain("wrong-password-");
    expect(log).not.toContain(PASSWORD);
  });

  it("Microsoft 365 unreachable: -ERR [SYS/TEMP]", async () => {
    const options = frontDoorOptions(env, "pop3", { security: "plain" });
    const d = await startPop3FrontDoor({
      ...options,
      upstream: { ...options.upstream!, port: await freePort() },
    });
    doors.push(d);
    const client = await greeted(d);
    client.send(`USER ${SUPPORT}\r\nPASS ${PASSWORD}\r\n`);
    await client.until(/^-ERR \[SYS\/TEMP\] .*ECONNREFUSED.*\r\n/m);
    client.send("QUIT\r\n");
    await client.waitClosed();
  });

  it("a password with spaces (RFC 1939: the rest of the line) logs in", async () => {
    const user = "alice@contoso.com";
    const spaced = "two words and more";
    env.emulator.admin.updateUser(user, { password: spaced });
    const d = await door({});
    const client = await greeted(d);
    client.send(`USER ${user}\r\nPASS ${spaced}\r\nSTAT\r\nQUIT\r\n`);
    const text = await client.until(/^\+OK .*\r\n\+OK \d+ \d+\r\n/m);
    expect(text).toContain("+OK Logged in.");
    await client.waitClosed();
  });
});
