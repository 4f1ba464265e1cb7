/**
 * Microsoft 365 throttling a mailbox over IMAP (`NO Request is throttled. Suggested Backoff Time: N
 * milliseconds`, the emulator's `throttled` fault): the bridge relays Exchange's answer to the session
 * that got it and holds new logins to that mailbox until the back-off has passed, so that devices
 * retrying do not lengthen the throttling; other mailboxes and open sessions are not touched. Logins are
 * made with Python's imaplib; the throttled session is a raw client (to read the exact answers).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatStatus } from "../src/index.js";
import {
  deliver,
  dovecotMissing,
  RawClient,
  type RelayBridge,
  type RelayEnv,
  run,
  SUPPORT,
  sleep,
  startRelayBridge,
  startRelayEnv,
} from "./relay-helpers.js";

const PASSWORD = "Demo-Passw0rd!";
const THROTTLED = /^(\S+) NO Request is throttled\. Suggested Backoff Time: (\d+) milliseconds$/m;

/** imaplib logs in, selects INBOX and logs out; exit 3 with the server's words on a refused login. */
const IMAPLIB = `
import imaplib, os, sys
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
try:
    M.login(os.environ["IMAP_USER"], os.environ["IMAP_PASSWORD"])
except imaplib.IMAP4.error as e:
    print("REFUSED", e)
    sys.exit(3)
typ, data = M.select("INBOX")
print("SELECT", typ)
M.logout()
`;

describe.skipIf(dovecotMissing)("IMAP relay while Microsoft 365 throttles a mailbox", () => {
  let env: RelayEnv;
  let bridge: RelayBridge;
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-throttling-");
    bridge = await startRelayBridge(env);
  });
  afterAll(async () => {
    await bridge?.close();
    await env?.stop();
  });

  const port = () => bridge.port("imap", "plain");
  const imaplib = (user: string) =>
    run("python3", ["-c", IMAPLIB], {
      env: { PORT: String(port()), IMAP_USER: user, IMAP_PASSWORD: PASSWORD },
    });
  const upstreamSignIns = () => env.emulator.admin.counts()["imap.authenticate"] ?? 0;
  const throttleWarnings = () =>
    bridge.lines.filter(
      (l) => l.startsWith("warn ") && l.includes("Microsoft 365 is throttling IMAP for support@contoso.com"),
    );
  const metric = (name: string) =>
    Number(new RegExp(`^${name}\\{protocol="imap"\\} (\\d+)$`, "m").exec(bridge.metrics())?.[1] ?? 0);

  /** A session through the bridge, signed in as support@ with LOGIN. */
  async function signedIn(): Promise<RawClient> {
    const client = await RawClient.open(port());
    await client.until(/^\* OK .*\r\n/);
    client.send(`a1 LOGIN ${SUPPORT} "${PASSWORD}"\r\n`);
    expect(await client.until(/^a1 .*\r\n/m)).toMatch(/^a1 OK/m);
    return client;
  }

  it("mail whose text is Exchange's throttling answer does not hold anything", async () => {
    const text = "a3 NO Request is throttled. Suggested Backoff Time: 600000 milliseconds";
    await deliver(env, SUPPORT, "looks like throttling", `${text}\r\n${text}`);
    const client = await signedIn();
    try {
      client.send("a2 SELECT INBOX\r\na3 FETCH 1:* (BODY.PEEK[])\r\n");
      const answer = await client.until(/^a3 OK.*\r\n/m);
      expect(answer).toContain(text);
    } finally {
      client.close();
    }
    expect(bridge.status().throttled).toEqual([]);
    const again = await imaplib(SUPPORT);
    expect(again.stdout, again.stderr).toContain("SELECT OK");
  });

  it("relays the throttling answer, holds new logins to that mailbox until the back-off passes, and only those", async () => {
    const before = { signIns: upstreamSignIns(), held: metric("m365_bridge_logins_held_total") };
    env.emulator.admin.armFault({ target: "imap", kind: "throttled", path: "command", retryAfterSeconds: 3 });
    const throttled = await signedIn();
    try {
      throttled.send("a2 SELECT INBOX\r\n");
      const answer = THROTTLED.exec(await throttled.until(/^a2 .*\r\n/m));
      expect(answer?.[1]).toBe("a2");
      const status = bridge.status().throttled;
      expect(status.map(({ protocol, mailbox }) => ({ protocol, mailbox }))).toEqual([
        { protocol: "imap", mailbox: SUPPORT },
      ]);
      expect(Date.parse(status[0]!.until) - Date.now()).toBeGreaterThan(1000);
      expect(formatStatus(bridge.status())).toContain(
        `Microsoft 365 throttling (new logins wait, open sessions go on):\n  imap ${SUPPORT} until ${status[0]!.until}`,
      );
      const signInsBefore = upstreamSignIns();

      // Logins to the throttled mailbox are answered by the bridge, without a sign-in upstream.
      for (let i = 0; i < 3; i++) {
        const held = await imaplib(SUPPORT);
        expect(held.code, held.stderr).toBe(3);
        expect(held.stdout).toMatch(
          /REFUSED .*\[UNAVAILABLE\] Microsoft 365 is throttling support@contoso\.com; try again in about [1-3] s\./,
        );
      }
      expect(upstreamSignIns()).toBe(signInsBefore);
      expect(metric("m365_bridge_logins_held_total") - before.held).toBe(3);
      expect(throttleWarnings()).toHaveLength(1);

      // Another mailbox is not held; the open session goes on (Exchange answers it).
      const alice = await imaplib("alice@contoso.com");
      expect(alice.stdout, alice.stderr).toContain("SELECT OK");
      throttled.send("a3 NOOP\r\n");
      expect(await throttled.until(/^a3 .*\r\n/m)).toMatch(THROTTLED);

      // After the back-off, logins go upstream again and work.
      await sleep(Date.parse(status[0]!.until) - Date.now() + 100);
      const after = await imaplib(SUPPORT);
      expect(after.stdout, after.stderr).toContain("SELECT OK");
      expect(bridge.status().throttled).toEqual([]);
      throttled.send("a4 SELECT INBOX\r\n");
      expect(await throttled.until(/^a4 .*\r\n/m)).toMatch(/^a4 OK/m);
    } finally {
      throttled.close();
      env.emulator.admin.clearFaults();
    }
    expect(upstreamSignIns() - before.signIns).toBe(3); // the throttled session, alice, the last login
  });

  it("a sign-in Exchange throttles is answered 'try later' and the next logins wait without asking it", async () => {
    env.emulator.admin.armFault({ target: "imap", kind: "throttled", path: "login", retryAfterSeconds: 2 });
    const first = await imaplib(SUPPORT);
    expect(first.code, first.stderr).toBe(3);
    expect(first.stdout).toMatch(/\[UNAVAILABLE\].*throttl/i);
    expect(first.stdout).not.toMatch(/AUTHENTICATIONFAILED/);
    const signInsBefore = upstreamSignIns();
    const second = await imaplib(SUPPORT);
    expect(second.stdout).toMatch(
      /\[UNAVAILABLE\] Microsoft 365 is throttling support@contoso\.com; try again in about [12] s\./,
    );
    expect(upstreamSignIns()).toBe(signInsBefore);
    await sleep(Date.parse(bridge.status().throttled[0]!.until) - Date.now() + 100);
    const later = await imaplib(SUPPORT);
    expect(later.stdout, later.stderr).toContain("SELECT OK");
  });
});
