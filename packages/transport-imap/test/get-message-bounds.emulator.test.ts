import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { M365MailError } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImapTransport } from "../src/index.js";
import {
  collect,
  deliver,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

// Issue 12, item 6: getMessage had no size limit (a 1 GB message was read into memory) and no deadline
// (timeoutMs: 0 — a server that stopped answering mid-FETCH hung the caller forever).

const SUPPORT = "support@contoso.com";

async function rejection(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof M365MailError)) throw new Error(`expected an M365MailError, got ${String(error)}`);
  return error;
}

/** A TCP relay to Dovecot that can stop passing the server's bytes on (TLS goes through untouched). */
async function stallableRelay(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const state = { stalled: false };
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target.port, target.host);
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (!state.stalled) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    state,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe.skipIf(dovecotMissing)("imap getMessage is bounded (emulator + Dovecot)", () => {
  let env: ImapEmulator;
  beforeAll(async () => {
    env = await startImapEmulator();
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  const idOf = async (imap: ImapTransport, subject: string) => {
    const found = (await collect(imap.listMessages({ limit: 20 }))).find((m) => m.subject === subject);
    if (!found) throw new Error(`${subject} not found`);
    return found.id;
  };

  it("refuses a message over maxMessageBytes before downloading it, with a hint naming the option", async () => {
    const subject = `big ${randomBytes(4).toString("hex")}`;
    await deliver(env, SUPPORT, {
      from: "alice@contoso.com",
      to: SUPPORT,
      subject,
      text: "see attachment",
      attachments: [{ filename: "blob.bin", content: randomBytes(40_000) }],
    });
    const small = `small ${randomBytes(4).toString("hex")}`;
    await deliver(env, SUPPORT, { from: "alice@contoso.com", to: SUPPORT, subject: small, text: "hi" });
    const imap = transportFor(env, emulatorProvider(env.emulator), { maxMessageBytes: 20_000 });
    try {
      const error = await rejection(imap.getMessage(await idOf(imap, subject)));
      expect(error.code).toBe("MESSAGE_TOO_LARGE");
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/is \d+ bytes, over maxMessageBytes \(20000\)/);
      expect(error.hint).toContain("maxMessageBytes");
      // The connection is still good for messages under the limit.
      expect((await imap.getMessage(await idOf(imap, small))).text?.trim()).toBe("hi");
    } finally {
      await imap.close();
    }
    // The default limit (50 MB) reads it.
    const roomy = transportFor(env, emulatorProvider(env.emulator));
    try {
      const message = await roomy.getMessage(await idOf(roomy, subject));
      expect(message.attachments[0]?.size).toBe(40_000);
    } finally {
      await roomy.close();
    }
  });

  it("refuses invalid limits at construction", () => {
    const auth = emulatorProvider(env.emulator);
    for (const extra of [{ maxMessageBytes: 0 }, { messageTimeoutMs: -1 }]) {
      let error: unknown;
      try {
        transportFor(env, auth, extra);
      } catch (e) {
        error = e;
      }
      expect((error as M365MailError).code).toBe("CONFIG_INVALID");
    }
  });

  it("ends a getMessage the server stops answering with TIMEOUT after messageTimeoutMs", async () => {
    const subject = `stall ${randomBytes(4).toString("hex")}`;
    await deliver(env, SUPPORT, { from: "alice@contoso.com", to: SUPPORT, subject, text: "hello" });
    const relay = await stallableRelay({ host: env.host, port: env.port });
    // timeoutMs (per command) is long on purpose: only the new deadline can end this.
    const imap = transportFor(env, emulatorProvider(env.emulator), {
      host: "127.0.0.1",
      port: relay.port,
      timeoutMs: 60_000,
      messageTimeoutMs: 800,
    });
    try {
      const id = await idOf(imap, subject);
      relay.state.stalled = true;
      const started = Date.now();
      const error = await rejection(imap.getMessage(id));
      const elapsed = Date.now() - started;
      expect(error.code).toBe("TIMEOUT");
      expect(error.retryable).toBe(true);
      expect(error.message).toContain("messageTimeoutMs (800 ms)");
      expect(error.hint).toContain("messageTimeoutMs");
      expect(elapsed).toBeGreaterThanOrEqual(700);
      expect(elapsed).toBeLessThan(5_000);
      // The stalled connection was dropped: once the server answers again, so does the transport.
      relay.state.stalled = false;
      expect((await imap.getMessage(id)).subject).toBe(subject);
    } finally {
      await imap.close();
      await relay.close();
    }
  }, 30_000);
});
