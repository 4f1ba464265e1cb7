/**
 * Microsoft 365 throttling a mailbox over IMAP (`NO Request is throttled. Suggested Backoff Time: N
 * milliseconds`, the emulator's `throttled` fault): the bridge relays Exchange's answer to the session
 * that got it and holds new logins to that mailbox until the back-off has passed, so that devices
 * retrying do not lengthen the throttling; other mailboxes and open sessions are not touched. Logins are
 * made with Python's imaplib; the throttled session is a raw client (to read the exact answers). Bridges
 * on one Redis token cache share their holds (a real redis-server).
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
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
const hasRedis = needs("redis");
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
    // Long enough for three held logins and another mailbox's login on a loaded 2-core machine.
    env.emulator.admin.armFault({ target: "imap", kind: "throttled", path: "command", retryAfterSeconds: 8 });
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
          /REFUSED .*\[UNAVAILABLE\] Microsoft 365 is throttling support@contoso\.com; try again in about [1-8] s\./,
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

describe.skipIf(dovecotMissing || !hasRedis)(
  "several bridges on one Redis while Microsoft 365 throttles a mailbox",
  () => {
    let env: RelayEnv;
    let redis: TestRedis;
    const bridges: RelayBridge[] = [];
    beforeAll(async () => {
      env = await startRelayEnv("m365-bridge-fleet-throttling-");
      redis = await startRedis({ prefix: "m365-bridge-fleet-throttling-" });
      await writeFile(keyFile(), randomBytes(32).toString("base64"), { mode: 0o600 });
    });
    afterAll(async () => {
      for (const b of bridges) await b.close();
      await env?.stop();
      await redis?.stop();
    });

    const keyFile = () => join(env.emulator.dataDir, "fleet-cache.key");
    const fleetBridge = async (name: string) => {
      const bridge = await startRelayBridge(env, {
        dataDir: join(env.emulator.dataDir, name),
        tokenCache: { type: "redis", url: redis.url, keyFile: keyFile() },
      });
      bridges.push(bridge);
      return bridge;
    };
    const imaplib = (bridge: RelayBridge, user: string) =>
      run("python3", ["-c", IMAPLIB], {
        env: { PORT: String(bridge.port("imap", "plain")), IMAP_USER: user, IMAP_PASSWORD: PASSWORD },
      });
    const upstreamSignIns = () => env.emulator.admin.counts()["imap.authenticate"] ?? 0;
    /** Polls (up to 3 s) until the bridge holds a mailbox: the notice crosses Redis. */
    const holding = async (bridge: RelayBridge) => {
      for (const end = Date.now() + 3000; Date.now() < end; await sleep(20)) {
        if (bridge.status().throttled.length > 0) return bridge.status().throttled;
      }
      return bridge.status().throttled;
    };

    it("a hold one bridge meets holds logins at the others, and at a bridge that starts during it", async () => {
      const [first, second] = [await fleetBridge("first"), await fleetBridge("second")];
      // Both bridges are signed in (one sign-in, shared through Redis) before the throttling begins.
      for (const bridge of [first, second]) {
        const ok = await imaplib(bridge, SUPPORT);
        expect(ok.stdout, ok.stderr).toContain("SELECT OK");
      }
      env.emulator.admin.armFault({
        target: "imap",
        kind: "throttled",
        path: "command",
        retryAfterSeconds: 4,
      });
      const client = await RawClient.open(first.port("imap", "plain"));
      try {
        await client.until(/^\* OK .*\r\n/);
        client.send(`a1 LOGIN ${SUPPORT} "${PASSWORD}"\r\na2 SELECT INBOX\r\n`);
        expect(await client.until(/^a2 .*\r\n/m)).toMatch(THROTTLED);
      } finally {
        client.close();
        env.emulator.admin.clearFaults();
      }
      const held = await holding(second);
      expect(held.map(({ protocol, mailbox }) => ({ protocol, mailbox }))).toEqual([
        { protocol: "imap", mailbox: SUPPORT },
      ]);
      expect(second.lines.join("\n")).toContain(
        "Another bridge reports that Microsoft 365 is throttling IMAP for support@contoso.com",
      );

      const signInsBefore = upstreamSignIns();
      const refused = await imaplib(second, SUPPORT);
      expect(refused.code, refused.stderr).toBe(3);
      expect(refused.stdout).toMatch(
        /\[UNAVAILABLE\] Microsoft 365 is throttling support@contoso\.com; try again/,
      );
      // A bridge started now learns the hold from Redis.
      const third = await fleetBridge("third");
      expect((await holding(third)).map((h) => h.mailbox)).toEqual([SUPPORT]);
      const late = await imaplib(third, SUPPORT);
      expect(late.code, late.stderr).toBe(3);
      expect(upstreamSignIns()).toBe(signInsBefore);
      // The bridges that only heard of it count the held logins, not a throttling episode of their own.
      expect(second.metrics()).toMatch(/^m365_bridge_logins_held_total\{protocol="imap"\} 1$/m);
      expect(second.metrics()).not.toMatch(/^m365_bridge_upstream_throttled_total\{protocol="imap"\} [1-9]/m);

      await sleep(Date.parse(held[0]!.until) - Date.now() + 100);
      const after = await imaplib(second, SUPPORT);
      expect(after.stdout, after.stderr).toContain("SELECT OK");
      expect(third.status().throttled).toEqual([]);
    });
  },
);
