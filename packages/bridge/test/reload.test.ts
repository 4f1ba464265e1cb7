import { connect } from "node:net";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Bridge,
  type BridgeConfigInput,
  type ListenerInput,
  startBridge,
  startImapFrontDoor,
  validateBridgeConfig,
} from "../src/index.js";
import {
  collectingLogger,
  configFor,
  DEMO_PASSWORD,
  smtpDialog,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
} from "./bridge-env.js";
import { dovecotMissing, RawClient, type RelayEnv, startRelayEnv } from "./relay-helpers.js";

let emulator: TestEmulator;
let bridge: Bridge | undefined;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
});
afterEach(async () => {
  await bridge?.close({ drainMs: 0 });
  bridge = undefined;
});
afterAll(async () => {
  await emulator?.stop();
});

const smtp = (port: number, limits?: ListenerInput["limits"]): ListenerInput => ({
  protocol: "smtp",
  host: "127.0.0.1",
  port,
  security: "plain",
  ...(limits ? { limits } : {}),
});
const support = { credentials: { mode: "passthrough" as const, username: "support@contoso.com" } };
const alice = { credentials: { mode: "passthrough" as const, username: "alice@contoso.com" } };

/** AUTH PLAIN on a fresh connection: the reply code (235 signed in, 535 refused). */
async function login(port: number, username: string): Promise<string> {
  const s = await smtpDialog(port);
  try {
    await s.command("EHLO reload");
    const auth = Buffer.from(`\0${username}\0${DEMO_PASSWORD}`).toString("base64");
    return (await s.command(`AUTH PLAIN ${auth}`)).slice(0, 3);
  } finally {
    s.close();
  }
}

/** Whether the port takes a connection and greets with 220 within `timeoutMs`. */
function greets(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("data", (chunk: Buffer) => done(chunk.toString("latin1").startsWith("220")));
    socket.once("error", () => done(false));
  });
}

describe("bridge.reload", () => {
  // Bug: a listener that could not bind left the reload half done: the listener it replaced was already
  // closed (but still listed), the new accounts applied, and a corrected reload never brought it back.
  it("is all or nothing: a listener whose port is in use fails the reload and nothing changes", async () => {
    const input = (listeners: ListenerInput[], accounts: BridgeConfigInput["accounts"]) =>
      configFor(emulator, { listeners, accounts });
    bridge = await startTestBridge(emulator, {
      listeners: [smtp(0), smtp(0, { maxRecipients: 100 })],
      accounts: [support],
    });
    const [first, second] = [smtpPort(bridge, 0), smtpPort(bridge, 1)];
    expect(await login(first, "alice@contoso.com")).toBe("535");

    // The second listener moves onto the first one's port, and an account is added: the bind fails.
    await expect(
      bridge.reload(input([smtp(0), smtp(first, { maxRecipients: 50 })], [support, alice])),
    ).rejects.toThrow(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first}\\b`));
    expect(bridge.addresses.map((a) => a.port)).toEqual([first, second]);
    expect(bridge.status().listeners.map((l) => l.port)).toEqual([first, second]);
    expect(await greets(first)).toBe(true);
    expect(await greets(second)).toBe(true);
    // The accounts of the failed file did not apply.
    expect(bridge.status().accounts.map((a) => a.name)).toEqual(["support@contoso.com"]);
    expect(await login(second, "alice@contoso.com")).toBe("535");
    expect(await login(second, "support@contoso.com")).toBe("235");

    // A corrected file applies: the second listener gets its new limits on its own port.
    await bridge.reload(input([smtp(0), smtp(second, { maxRecipients: 50 })], [support, alice]));
    expect(bridge.status().listeners.map((l) => l.port)).toEqual([first, second]);
    expect(await greets(first)).toBe(true);
    expect(await login(second, "alice@contoso.com")).toBe("235");
    expect(bridge.status().accounts.map((a) => a.name)).toEqual(["support@contoso.com", "alice@contoso.com"]);
  });

  it("a changed listener whose replacement fails on its own port is started again with its old settings", async () => {
    const imap = (port: number, maxLineBytes: number): ListenerInput => ({
      protocol: "imap",
      host: "127.0.0.1",
      port,
      security: "plain",
      limits: { maxLineBytes },
    });
    // The replacement (maxLineBytes 4096) fails after its predecessor gave up the port.
    bridge = await startBridge(configFor(emulator, { listeners: [imap(0, 8192)], accounts: [support] }), {
      logger: collectingLogger(),
      relays: {
        imap: (o) =>
          o.limits.maxLineBytes === 4096
            ? Promise.reject(new Error("replacement refused"))
            : startImapFrontDoor(o),
      },
    });
    const port = bridge.addresses[0]!.port;
    await expect(
      bridge.reload(configFor(emulator, { listeners: [imap(port, 4096)], accounts: [support, alice] })),
    ).rejects.toThrow("replacement refused");
    expect(bridge.status().listeners.map((l) => l.port)).toEqual([port]);
    expect(await imapGreets(port)).toBe(true);
    expect(bridge.status().accounts.map((a) => a.name)).toEqual(["support@contoso.com"]);
  });

  // Bug: the changed listener was closed and its open sessions drained (up to 30 s) before the new one
  // started, so the port refused every new client while one old session stayed open.
  it("says which changed settings wait for a restart (logLevel, logFormat)", async () => {
    const logger = collectingLogger();
    bridge = await startTestBridge(emulator, { listeners: [smtp(0)], accounts: [support] }, logger);
    await bridge.reload(
      configFor(emulator, { listeners: [smtp(0)], accounts: [support], logFormat: "json" }),
    );
    expect(logger.lines).toContain(
      "warn [bridge] reload: logLevel or logFormat changed; they apply after a restart",
    );
  });

  it("a changed SMTP listener takes new clients at once, with its new limits, while an old session is open", async () => {
    const logger = collectingLogger();
    bridge = await startTestBridge(
      emulator,
      { listeners: [smtp(0, { maxRecipients: 100 })], accounts: [support] },
      logger,
    );
    const port = smtpPort(bridge);
    const old = await smtpDialog(port);
    await old.command("EHLO old-session");
    const auth = Buffer.from(`\0support@contoso.com\0${DEMO_PASSWORD}`).toString("base64");
    expect(await old.command(`AUTH PLAIN ${auth}`)).toMatch(/^235/);

    const reloading = bridge.reload(
      configFor(emulator, { listeners: [smtp(port, { maxRecipients: 2 })], accounts: [support] }),
    );
    expect(await acceptsWithin(port, 1000, (p) => greets(p))).toBe(true);
    const fresh = await smtpDialog(port);
    await fresh.command("EHLO new-session");
    expect(await fresh.command(`AUTH PLAIN ${auth}`)).toMatch(/^235/);
    expect(await fresh.command("MAIL FROM:<support@contoso.com>")).toMatch(/^250/);
    for (const r of ["a", "b"]) expect(await fresh.command(`RCPT TO:<${r}@contoso.com>`)).toMatch(/^250/);
    expect(await fresh.command("RCPT TO:<c@contoso.com>")).toBe("452 4.5.3 Too many recipients");
    fresh.close();
    // (smtp-server answers an old session's next command with 421 once its server closes: the client
    // reconnects, to the new listener.)
    old.close();
    await reloading;
    expect(bridge.status().listeners.map((l) => l.port)).toEqual([port]);
    expect(logger.lines.join("\n")).toMatch(
      /stops accepting, a listener with the new settings takes its port/,
    );
  });

  describe.skipIf(dovecotMissing)("through the IMAP relay", () => {
    let env: RelayEnv;
    beforeAll(async () => {
      env = await startRelayEnv("m365-bridge-reload-");
    });
    afterAll(async () => {
      await env?.stop();
    });

    const relayConfig = (port: number, maxLineBytes: number) =>
      validateBridgeConfig(
        {
          dataDir: join(env.emulator.dataDir, "bridge"),
          m365: { engine: "http", caFile: env.emulator.caPath },
          listeners: [
            { protocol: "imap", host: "127.0.0.1", port, security: "plain", limits: { maxLineBytes } },
          ],
          accounts: [{ name: "contoso", credentials: { mode: "passthrough", domain: "contoso.com" } }],
        },
        env.emulator.env(),
      );

    it("a client in IDLE keeps its session while the changed listener takes new clients at once", async () => {
      bridge = await startBridge(relayConfig(0, 8192), { logger: collectingLogger() });
      const port = bridge.addresses[0]!.port;
      const old = await RawClient.open(port);
      await old.until(/^\* OK .*\r\n/m);
      old.send(`a LOGIN alice@contoso.com ${DEMO_PASSWORD}\r\n`);
      await old.until(/^a OK .*\r\n/m);
      old.send("b SELECT INBOX\r\n");
      await old.until(/^b OK .*\r\n/m);
      let mark = old.text.length;
      old.send("c IDLE\r\n");
      await old.until(/^\+ .*\r\n/m, 10_000, mark);

      const reloading = bridge.reload(relayConfig(port, 4096));
      expect(await acceptsWithin(port, 1000, imapGreets)).toBe(true);

      // The old session goes on: IDLE ends normally, commands still work, then it logs out.
      mark = old.text.length;
      old.send("DONE\r\n");
      await old.until(/^c OK .*\r\n/m, 10_000, mark);
      old.send("d NOOP\r\n");
      await old.until(/^d OK .*\r\n/m, 10_000, mark);
      old.send("e LOGOUT\r\n");
      await old.waitClosed(5000);
      await reloading;
      expect(bridge.status().listeners.map((l) => l.port)).toEqual([port]);
    });
  });
});

/** Whether an IMAP listener on the port greets with `* OK` within half a second. */
async function imapGreets(port: number): Promise<boolean> {
  const client = await RawClient.open(port).catch(() => undefined);
  if (!client) return false;
  try {
    return /^\* OK /.test(await client.until(/^\* OK .*\r\n/m, 500).catch(() => ""));
  } finally {
    client.close();
  }
}

/** Polls `greets` until it answers true or `withinMs` passed (each try bounded by `greets` itself). */
async function acceptsWithin(
  port: number,
  withinMs: number,
  greets: (port: number) => Promise<boolean>,
): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (await greets(port)) return true;
    if (Date.now() - started > withinMs) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
