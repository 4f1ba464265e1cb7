/**
 * A problem a person must fix is reported once and stays reported until the thing that failed works
 * again. Before, any good sign-in of the account "resolved" every problem: with SMTP AUTH off (or
 * Mail.Send not consented) each message meant a resolved event at the login and a new problem at the
 * delivery — the webhook got two events per message and `bridge status` flickered. Now a problem has an
 * area: "sign-in" (MFA, the password…) ends at any good sign-in; "smtp", "graph", "imap", "pop3" end
 * only when a delivery over that route, or an upstream login over that protocol, works.
 */
import { randomBytes } from "node:crypto";
import { dovecotPart, graphPart, smtpPart, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Bridge, formatStatus } from "../src/index.js";
import {
  collectingLogger,
  demoPasswordFile,
  mailbox,
  mappedCredentials,
  pythonImapLogin,
  pythonSmtp,
  smtpPort,
  startTestBridge,
  startWebhookReceiver,
  textMessage,
  waitFor,
} from "./bridge-env.js";
import { dovecotMissing } from "./relay-helpers.js";

let emulator: TestEmulator;
let bridge: Bridge;
const logger = collectingLogger();
const secret = `device-${randomBytes(6).toString("hex")}`;
let webhook: Awaited<ReturnType<typeof startWebhookReceiver>>;
let events: Record<string, unknown>[];

const ADDRESSES: Record<string, string> = {
  relay: "nosmtp@contoso.com",
  reader: "noimap@contoso.com",
  sender: "support@contoso.com",
  "auto-sender": "alice@contoso.com",
};

beforeAll(async () => {
  emulator = await startTestEmulator({
    prefix: "m365-bridge-problem-areas-",
    parts: [graphPart(), smtpPart(), ...(dovecotMissing ? [] : [dovecotPart()])],
  });
  webhook = await startWebhookReceiver();
  events = webhook.events;
  const passwordFile = await demoPasswordFile(emulator, "m365.password");
  const account = async (name: string, delivery: "graph" | "smtp" | "auto") => ({
    name,
    delivery,
    credentials: await mappedCredentials({ login: name, secret, username: ADDRESSES[name]!, passwordFile }),
  });
  bridge = await startTestBridge(
    emulator,
    {
      webhookUrl: webhook.url,
      listeners: [
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
        ...(dovecotMissing
          ? []
          : [{ protocol: "imap" as const, host: "127.0.0.1", port: 0, security: "plain" as const }]),
      ],
      accounts: [
        // SMTP AUTH is off for nosmtp@, and this account delivers over Exchange's SMTP.
        await account("relay", "smtp"),
        // IMAP is off for noimap@.
        await account("reader", "graph"),
        await account("sender", "graph"),
        await account("auto-sender", "auto"),
      ],
    },
    logger,
  );
});
afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await webhook?.close();
  await emulator?.stop();
});

const tag = () => randomBytes(4).toString("hex");
const eventsOf = (account: string) => events.filter((e) => e.account === account);
const openOf = (account: string) => bridge.status().signInProblems.filter((p) => p.account === account);
const withSubject = async (subject: string) =>
  (await mailbox(emulator, "alice@contoso.com")).filter((m) => m.subject === subject);
/** Webhook events are posted without waiting: give the last one time to arrive. */
const settle = () => new Promise((r) => setTimeout(r, 300));

/** Python's smtplib as the account's device: "OK", or "ERR <code> <text>". */
async function send(account: string, subject: string): Promise<string> {
  const from = ADDRESSES[account]!;
  const result = await pythonSmtp({
    port: smtpPort(bridge),
    username: account,
    password: secret,
    from,
    to: ["alice@contoso.com"],
    message: textMessage({ from, to: "alice@contoso.com", subject }),
  });
  return result.stdout.trim();
}

/** Python's imaplib as the account's device: "OK" or "REFUSED <text>". */
const imapLogin = (account: string) =>
  pythonImapLogin(bridge.addresses.find((a) => a.protocol === "imap")!.port, account, secret);

describe("problems that need a person, by area", () => {
  it("SMTP AUTH off: reported once although every login of the account works, and over with the first message delivered once it is on", async () => {
    const subject = `smtp area ${tag()}`;
    for (let i = 0; i < 3; i++) expect(await send("relay", subject)).toMatch(/^ERR 550 5\.7\.139 /);
    await settle();
    expect(eventsOf("relay")).toEqual([
      expect.objectContaining({ type: "sign-in-problem", area: "smtp", code: "PROTOCOL_DISABLED" }),
    ]);
    expect(openOf("relay")).toEqual([expect.objectContaining({ area: "smtp", code: "PROTOCOL_DISABLED" })]);
    expect(formatStatus(bridge.status())).toMatch(
      /\n {2}✗ relay \(nosmtp@contoso\.com, SMTP\): PROTOCOL_DISABLED .*since /,
    );
    expect(bridge.metrics()).toMatch(
      /m365_bridge_sign_in_problems\{account="relay",area="smtp",code="PROTOCOL_DISABLED"\} 1/,
    );
    expect(
      logger.lines.filter((l) => l.includes("needs a person") && l.includes("account relay")),
    ).toHaveLength(1);

    emulator.admin.updateUser(ADDRESSES.relay!, { mailboxProtocols: { smtpAuth: true } });
    try {
      expect(await send("relay", subject)).toBe("OK");
      await waitFor(async () => eventsOf("relay").length === 2);
      expect(eventsOf("relay")[1]).toEqual(
        expect.objectContaining({
          type: "sign-in-problem-resolved",
          area: "smtp",
          code: "PROTOCOL_DISABLED",
        }),
      );
      expect(openOf("relay")).toEqual([]);
      expect(bridge.metrics()).toMatch(
        /m365_bridge_sign_in_problems\{account="relay",area="smtp",code="PROTOCOL_DISABLED"\} 0/,
      );
      expect(await withSubject(subject)).toHaveLength(1);
    } finally {
      emulator.admin.updateUser(ADDRESSES.relay!, { mailboxProtocols: { smtpAuth: false } });
    }
  });

  it.skipIf(dovecotMissing)(
    "IMAP off for the mailbox: each login is refused with the setting, the problem is logged and posted once, and it ends at the first login after IMAP is on",
    async () => {
      for (let i = 0; i < 3; i++) expect(await imapLogin("reader")).toMatch(/^REFUSED .*IMAP/);
      // The same account signs in fine for SMTP meanwhile: that ends nothing.
      expect(await send("reader", `reader ${tag()}`)).toBe("OK");
      await settle();
      expect(eventsOf("reader")).toEqual([
        expect.objectContaining({ type: "sign-in-problem", area: "imap", code: "PROTOCOL_DISABLED" }),
      ]);
      expect(
        logger.lines.filter((l) => l.includes("needs a person") && l.includes("account reader")),
      ).toHaveLength(1);
      // Not a warning with the whole error at every login: the problem's one line says it all.
      expect(logger.lines.filter((l) => l.startsWith("warn") && l.includes("upstream failed"))).toEqual([]);

      emulator.admin.updateUser(ADDRESSES.reader!, { mailboxProtocols: { imap: true } });
      try {
        expect(await imapLogin("reader")).toBe("OK");
        await waitFor(async () => eventsOf("reader").length === 2);
        expect(eventsOf("reader")[1]).toEqual(
          expect.objectContaining({ type: "sign-in-problem-resolved", area: "imap" }),
        );
        expect(openOf("reader")).toEqual([]);
      } finally {
        emulator.admin.updateUser(ADDRESSES.reader!, { mailboxProtocols: { imap: false } });
      }
    },
  );

  it("Mail.Send not consented: delivery graph reports it (area graph) once; auto delivers over SMTP with nothing to report; consent granted, the next message goes out", async () => {
    const { admin, clientId } = emulator;
    const allGranted = admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
    const subject = `graph area ${tag()}`;
    admin.updateApp(clientId, {
      grantedPermissions: { ...allGranted, graph: (allGranted.graph ?? []).filter((p) => p !== "Mail.Send") },
    });
    // The tokens the bridge holds were issued with Mail.Send: revoked, the next ones are issued without.
    admin.revokeTokens(ADDRESSES.sender!);
    admin.revokeTokens(ADDRESSES["auto-sender"]!);
    // Only Date is faked (sockets and timers run as usual), to step over the once-a-minute token recheck.
    vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
    try {
      for (let i = 0; i < 2; i++) expect(await send("sender", subject)).toMatch(/^ERR 5\d\d .*Mail\.Send/);
      expect(await send("auto-sender", subject)).toBe("OK");
      await settle();
      expect(eventsOf("sender")).toEqual([
        expect.objectContaining({ type: "sign-in-problem", area: "graph", code: "ACCESS_DENIED" }),
      ]);
      expect(eventsOf("auto-sender")).toEqual([]);
      expect(openOf("sender")[0]!.hint).toMatch(/Mail\.Send.*Grant admin consent/);

      admin.updateApp(clientId, { grantedPermissions: allGranted });
      // The token in memory still lacks Mail.Send: Graph's refusal makes the bridge ask for a fresh one,
      // at most once a minute (the last was a moment ago).
      vi.setSystemTime(Date.now() + 61_000);
      expect(await send("sender", subject)).toBe("OK");
      await waitFor(async () => eventsOf("sender").length === 2);
      expect(eventsOf("sender")[1]).toEqual(
        expect.objectContaining({ type: "sign-in-problem-resolved", area: "graph", code: "ACCESS_DENIED" }),
      );
      expect(openOf("sender")).toEqual([]);
      expect(await withSubject(subject)).toHaveLength(2);
    } finally {
      vi.useRealTimers();
      admin.updateApp(clientId, { grantedPermissions: allGranted });
    }
  });
});
