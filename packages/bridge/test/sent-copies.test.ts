/**
 * A desktop mail client sends through the bridge's SMTP and then uploads its own copy to Sent Items over
 * IMAP (APPEND), while Microsoft 365 files one too: two copies of every sent message. With
 * `sentCopies: "drop"` the bridge leaves out that upload, and only that one (same mailbox and
 * Message-ID, once, soon after sending). Real clients: Python's smtplib sends; imaplib (synchronizing
 * literal, the bridge gives the `+`) and imapflow (LITERAL+ for a small message) upload, against the
 * emulator's Graph delivery and Dovecot.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { dovecotPart, graphPart, smtpPart, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, formatStatus } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  mailbox,
  pythonSmtp,
  run,
  smtpPort,
  startTestBridge,
  textMessage,
} from "./bridge-env.js";
import { dovecotMissing } from "./relay-helpers.js";

const SUPPORT = "support@contoso.com";
const hasRedis = needs("redis");

/** imaplib as a script would upload a sent message: APPEND "Sent Items" (\Seen) {n}; prints the answer. */
const IMAPLIB_APPEND = String.raw`
import imaplib, os, sys
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
M.login(os.environ["IMAP_USER"], os.environ["IMAP_PASSWORD"])
typ, data = M.append('"Sent Items"', "(\\Seen)", None, sys.stdin.buffer.read())
print(typ)
M.logout()
`;

describe.skipIf(dovecotMissing)("sentCopies: the client's own Sent Items upload", () => {
  let emulator: TestEmulator;
  const bridges: Record<
    "drop" | "keep" | "fleetA" | "fleetB",
    { bridge: Bridge; logger: ReturnType<typeof collectingLogger> }
  > = {} as never;
  let redis: TestRedis | undefined;

  beforeAll(async () => {
    emulator = await startTestEmulator({
      prefix: "m365-bridge-sent-copies-",
      parts: [graphPart(), smtpPart(), dovecotPart()],
    });
    const start = async (
      name: keyof typeof bridges,
      sentCopies: "drop" | "keep",
      tokenCache?: { type: "redis"; url: string; keyFile: string },
    ) => {
      const logger = collectingLogger();
      const bridge = await startTestBridge(
        emulator,
        {
          dataDir: `${emulator.dataDir}/bridge-${name}`,
          listeners: [
            { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
            { protocol: "imap", host: "127.0.0.1", port: 0, security: "plain" },
          ],
          ...(tokenCache ? { tokenCache } : {}),
          accounts: [
            { credentials: { mode: "passthrough", username: SUPPORT }, delivery: "graph", sentCopies },
          ],
        },
        logger,
      );
      bridges[name] = { bridge, logger };
    };
    await start("drop", "drop");
    await start("keep", "keep");
    if (hasRedis) {
      // Two bridges of a fleet on one Redis: a desktop client's SMTP and IMAP may reach different ones.
      redis = await startRedis({ prefix: "m365-bridge-sent-copies-" });
      const keyFile = `${emulator.dataDir}/token-cache.key`;
      await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
      for (const name of ["fleetA", "fleetB"] as const)
        await start(name, "drop", { type: "redis", url: redis.url, keyFile });
    }
  });
  afterAll(async () => {
    for (const { bridge } of Object.values(bridges)) await bridge.close({ drainMs: 0 });
    await emulator?.stop();
    await redis?.stop();
  });

  const imapPort = (bridge: Bridge) => bridge.addresses.find((a) => a.protocol === "imap")!.port;
  const sentItems = async (subject: string) =>
    (await mailbox(emulator, SUPPORT, "sentitems")).filter((m) => m.subject === subject);
  const message = (subject: string, padding = 0) =>
    textMessage({
      from: SUPPORT,
      to: "alice@contoso.com",
      subject,
      // Past 4 KB imapflow sends a synchronizing literal too; imaplib always does.
      body: `hello\r\n${"0123456789 "
        .repeat(7)
        .concat("\r\n")
        .repeat(Math.ceil(padding / 79))}`,
    });
  const send = async (bridge: Bridge, raw: string) => {
    const sent = await pythonSmtp({
      port: smtpPort(bridge),
      mechanism: "LOGIN",
      username: SUPPORT,
      password: DEMO_PASSWORD,
      from: SUPPORT,
      to: ["alice@contoso.com"],
      message: raw,
    });
    expect(sent.stdout.trim(), sent.stdout + sent.stderr).toBe("OK");
  };
  const imaplibAppend = async (bridge: Bridge, raw: string) => {
    const out = await run("python3", ["-c", IMAPLIB_APPEND], {
      env: { PORT: String(imapPort(bridge)), IMAP_USER: SUPPORT, IMAP_PASSWORD: DEMO_PASSWORD },
      input: raw,
    });
    return out.stdout.trim() || out.stderr;
  };
  const imapflowAppend = async (bridge: Bridge, raw: string) => {
    const client = new ImapFlow({
      host: "127.0.0.1",
      port: imapPort(bridge),
      secure: false,
      doSTARTTLS: false,
      auth: { user: SUPPORT, pass: DEMO_PASSWORD },
      logger: false,
    });
    await client.connect();
    try {
      const appended = await client.append("Sent Items", raw, ["\\Seen"]);
      // The session goes on: the next command is answered as usual.
      const status = await client.status("Sent Items", { messages: true });
      return { appended, messages: status ? status.messages : undefined };
    } finally {
      await client.logout();
    }
  };

  it("drop: imaplib's upload of a message just sent through the bridge is answered OK and not stored twice", async () => {
    const subject = `invoice ${randomBytes(3).toString("hex")}`;
    const raw = message(subject, 6000);
    await send(bridges.drop.bridge, raw);
    expect(await sentItems(subject)).toHaveLength(1);
    expect(await imaplibAppend(bridges.drop.bridge, raw)).toBe("OK");
    expect(await sentItems(subject)).toHaveLength(1);
    expect(bridges.drop.logger.lines.join("\n")).toContain("left out the client's Sent Items upload");
    expect(formatStatus(bridges.drop.bridge.status())).toContain(
      "support@contoso.com  (passthrough, delivery graph, sync, Sent Items uploads of its sent mail left out)",
    );
    expect(bridges.drop.bridge.metrics()).toContain(
      'm365_bridge_sent_copies_left_out_total{account="support@contoso.com"} 1',
    );
    // The same upload again (it was matched once): stored, as is any message the bridge did not send.
    expect(await imaplibAppend(bridges.drop.bridge, raw)).toBe("OK");
    expect(await sentItems(subject)).toHaveLength(2);
    const other = `not sent ${randomBytes(3).toString("hex")}`;
    expect(await imaplibAppend(bridges.drop.bridge, message(other, 6000))).toBe("OK");
    expect(await sentItems(other)).toHaveLength(1);
  });

  it("drop: imapflow's LITERAL+ upload is left out too, and the session carries on", async () => {
    const subject = `quote ${randomBytes(3).toString("hex")}`;
    const raw = message(subject);
    await send(bridges.drop.bridge, raw);
    const { appended, messages } = await imapflowAppend(bridges.drop.bridge, raw);
    expect(appended).toBeTruthy();
    expect(messages).toBeGreaterThan(0);
    expect(await sentItems(subject)).toHaveLength(1);
    // A message the bridge did not send goes up whole, through LITERAL+ as the client sent it.
    const other = `draft copy ${randomBytes(3).toString("hex")}`;
    const otherRaw = message(other);
    await imapflowAppend(bridges.drop.bridge, otherRaw);
    const stored = await sentItems(other);
    expect(stored).toHaveLength(1);
    // Byte for byte (Dovecot's Maildir keeps bare LF line ends).
    const lf = (text: string) => text.replace(/\r\n/g, "\n");
    expect(lf(stored[0]!.raw.toString("latin1"))).toBe(lf(otherRaw));
  });

  it("keep (the default): the client's upload is stored beside Microsoft 365's copy", async () => {
    const subject = `report ${randomBytes(3).toString("hex")}`;
    const raw = message(subject, 6000);
    await send(bridges.keep.bridge, raw);
    expect(await imaplibAppend(bridges.keep.bridge, raw)).toBe("OK");
    expect(await sentItems(subject)).toHaveLength(2);
  });

  it.skipIf(!hasRedis)(
    "drop, a fleet on one Redis: sent through one bridge, the upload through another is left out, once",
    async () => {
      const subject = `fleet ${randomBytes(3).toString("hex")}`;
      const raw = message(subject, 6000);
      await send(bridges.fleetA.bridge, raw);
      expect(await imaplibAppend(bridges.fleetB.bridge, raw)).toBe("OK");
      expect(await sentItems(subject)).toHaveLength(1);
      expect(bridges.fleetB.bridge.metrics()).toContain(
        'm365_bridge_sent_copies_left_out_total{account="support@contoso.com"} 1',
      );
      // Taken once across the fleet: the bridge that sent it stores a second upload.
      expect(await imaplibAppend(bridges.fleetA.bridge, raw)).toBe("OK");
      expect(await sentItems(subject)).toHaveLength(2);
    },
  );
});
