import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, networkMatcher, parseCidr } from "../src/index.js";
import { DEMO_PASSWORD, smtpDialog, smtpPort, startSmtpEmulator, startTestBridge } from "./bridge-env.js";

let emulator: TestEmulator;
let bridge: Bridge;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  bridge = await startTestBridge(emulator, {
    listeners: [
      {
        protocol: "smtp",
        host: "127.0.0.1",
        port: 0,
        security: "plain",
        allowedNetworks: ["127.0.0.0/30"],
        limits: { maxMessageBytes: 10_000, maxRecipients: 5, maxConnectionsPerIp: 2 },
      },
    ],
    accounts: [
      { credentials: { mode: "passthrough", username: "support@contoso.com" } },
      // SMTP delivery starts at DATA, before the message is complete (transport-smtp's relay).
      { credentials: { mode: "passthrough", username: "alice@contoso.com" }, delivery: "smtp" },
    ],
  });
});
afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

async function signedIn(username = "support@contoso.com") {
  const s = await smtpDialog(smtpPort(bridge));
  await s.command("EHLO limits");
  expect(
    await s.command(`AUTH PLAIN ${Buffer.from(`\0${username}\0${DEMO_PASSWORD}`).toString("base64")}`),
  ).toMatch(/^235/);
  return s;
}

const relayedToExchange = () => emulator.admin.counts()["smtp.messages:alice@contoso.com"] ?? 0;

describe("SMTP limits, answered as Exchange would", () => {
  it("advertises SIZE and refuses a larger message with 552 5.3.4 (declared or sent)", async () => {
    const s = await signedIn();
    expect(await s.command("EHLO again")).toMatch(/SIZE 10000/);
    // Postfix declares SIZE on every message and quotes this reply in its bounce: Exchange's words.
    expect(await s.command("MAIL FROM:<support@contoso.com> SIZE=20000")).toBe(
      "552 5.3.4 Message size exceeds fixed maximum message size",
    );
    expect(await s.command("MAIL FROM:<support@contoso.com> SIZE=9000")).toMatch(/^250/);
    expect(await s.command("RSET")).toMatch(/^250/);
    expect(await s.command("MAIL FROM:<support@contoso.com>")).toMatch(/^250/);
    expect(await s.command("RCPT TO:<alice@contoso.com>")).toMatch(/^250/);
    expect(await s.command("DATA")).toMatch(/^354/);
    const big = `Subject: big\r\n\r\n${"x".repeat(76)}\r\n`.repeat(200);
    expect(await s.command(`${big}.`)).toBe("552 5.3.4 Message size exceeds fixed maximum message size");
    s.close();
  });

  it("refuses recipients over the limit with 452 4.5.3 Too many recipients", async () => {
    const s = await signedIn();
    expect(await s.command("MAIL FROM:<support@contoso.com>")).toMatch(/^250/);
    for (let i = 0; i < 5; i++) expect(await s.command(`RCPT TO:<r${i}@contoso.com>`)).toMatch(/^250/);
    expect(await s.command("RCPT TO:<r5@contoso.com>")).toBe("452 4.5.3 Too many recipients");
    s.close();
  });

  it("caps connections per client address with 421", async () => {
    const a = await smtpDialog(smtpPort(bridge));
    const b = await smtpDialog(smtpPort(bridge));
    const c = await smtpDialog(smtpPort(bridge)).catch((e: Error) => ({ greeting: e.message, close() {} }));
    expect(c.greeting).toMatch(/^421 4\.3\.2/);
    c.close();
    // Refused connections do not count when they close: the cap stays 2 while a and b are open.
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 3; i++) {
      const again = await smtpDialog(smtpPort(bridge)).catch((e: Error) => ({
        greeting: e.message,
        close() {},
      }));
      expect(again.greeting).toMatch(/^421 4\.3\.2/);
      again.close();
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const s of [a, b]) s.close();
  });

  it("refuses a client outside allowedNetworks with 554 5.7.1", async () => {
    // 127.0.0.9 is loopback but not in 127.0.0.0/30.
    const { connect } = await import("node:net");
    const reply = await new Promise<string>((resolve) => {
      const socket = connect({ port: smtpPort(bridge), host: "127.0.0.1", localAddress: "127.0.0.9" });
      socket.once("data", (d) => {
        resolve(d.toString().trim());
        socket.destroy();
      });
    });
    expect(reply).toBe("554 5.7.1 Client host 127.0.0.9 is not allowed to use this listener");
  });
});

describe('delivery "smtp": handed to Exchange at DATA, while the message still arrives', () => {
  /** alice@ (delivery "smtp") to support@, up to the 354 that asks for the message. */
  const startMessage = async (s: Awaited<ReturnType<typeof signedIn>>) => {
    expect(await s.command("MAIL FROM:<alice@contoso.com>")).toMatch(/^250/);
    expect(await s.command("RCPT TO:<support@contoso.com>")).toMatch(/^250/);
    expect(await s.command("DATA")).toMatch(/^354/);
  };

  it("Exchange's envelope round trip overlaps the client's upload", async () => {
    // Exchange takes 1.5 s to answer MAIL FROM; the device takes 1.5 s to send its body after 354.
    emulator.admin.armFault({ target: "smtp", path: "/mail", kind: "delay", delayMs: 1500, times: 1 });
    const before = relayedToExchange();
    const s = await signedIn("alice@contoso.com");
    await startMessage(s);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const dot = Date.now();
    expect(await s.command("Subject: slow device\r\n\r\nscanned page\r\n.")).toMatch(/^250/);
    // Store-and-forward would start the upstream transaction only now and wait out the 1.5 s here.
    expect(Date.now() - dot).toBeLessThan(1000);
    expect(relayedToExchange()).toBe(before + 1);
    s.close();
  });

  it("an oversized message gets 552 and nothing reaches Exchange", async () => {
    const before = relayedToExchange();
    const s = await signedIn("alice@contoso.com");
    await startMessage(s);
    const big = `Subject: big\r\n\r\n${"x".repeat(76)}\r\n`.repeat(200);
    expect(await s.command(`${big}.`)).toMatch(/^552 5\.3\.4/);
    // The same session goes on: a message within the limit is relayed once.
    await startMessage(s);
    expect(await s.command("Subject: small\r\n\r\nok\r\n.")).toMatch(/^250/);
    expect(relayedToExchange()).toBe(before + 1);
    s.close();
  });

  it("a client that hangs up during DATA sends nothing, and the next message goes through", async () => {
    const before = relayedToExchange();
    const gone = await signedIn("alice@contoso.com");
    await startMessage(gone);
    gone.write("Subject: half a message\r\n\r\nthe first half, and then");
    await new Promise((resolve) => setTimeout(resolve, 100));
    gone.close();
    const next = await signedIn("alice@contoso.com");
    await startMessage(next);
    expect(await next.command("Subject: whole\r\n\r\nok\r\n.")).toMatch(/^250/);
    // Only the whole message reached Exchange; the half one was never ended with its final dot.
    expect(relayedToExchange()).toBe(before + 1);
    next.close();
  });
});

describe("networks", () => {
  it("matches IPv4, IPv6 and IPv4-mapped IPv6 addresses against CIDR lists", () => {
    const m = networkMatcher(["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
    expect(m("10.200.3.4")).toBe(true);
    expect(m("::ffff:10.1.2.3")).toBe(true);
    expect(m("11.0.0.1")).toBe(false);
    expect(m("192.168.1.7")).toBe(true);
    expect(m("192.168.1.8")).toBe(false);
    expect(m("fd12:3456::1")).toBe(true);
    expect(m("fe80::1")).toBe(false);
    expect(m("not an address")).toBe(false);
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
    expect(parseCidr("10.0.0.0/8x")).toBeUndefined();
  });
});
