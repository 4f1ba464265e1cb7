import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { M365MailError, silentLogger } from "@m365-mail/core";
import { startRedis } from "@m365-mail/test-helpers";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { loadServerConfig } from "../src/config.js";
import {
  redisWebhookStore,
  sqliteWebhookStore,
  type WebhookStore,
  webhookStorePath,
} from "../src/events/webhook-store.js";
import {
  SIGNATURE_HEADER,
  signWebhook,
  TIMESTAMP_HEADER,
  verifyWebhook,
  webhookSender,
} from "../src/events/webhooks.js";
import { hasRedis } from "./helpers.js";

const SECRET = "whsec-0123456789abcdef-long-enough";
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** A receiver on 127.0.0.1 that fails the first `failures` requests with 503. */
async function receiver(
  failures: number,
  port = 0,
  answer?: (res: import("node:http").ServerResponse) => void,
) {
  const received: Array<{ headers: IncomingMessage["headers"]; body: string }> = [];
  let calls = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      calls++;
      received.push({ headers: req.headers, body });
      if (answer) return answer(res);
      res.statusCode = calls <= failures ? 503 : 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("webhooks", () => {
  it("signs timestamp and body; the receiver's check accepts it and refuses a tampered or stale one", () => {
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    const body = '{"type":"mail.created"}';
    const signature = signWebhook(SECRET, ts, body);
    expect(signature).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(verifyWebhook(SECRET, { signature, timestamp: String(ts) }, body, 300, now)).toBe(true);
    expect(verifyWebhook(SECRET, { signature, timestamp: String(ts) }, `${body} `, 300, now)).toBe(false);
    expect(verifyWebhook("other-secret", { signature, timestamp: String(ts) }, body, 300, now)).toBe(false);
    expect(verifyWebhook(SECRET, { signature, timestamp: String(ts) }, body, 300, now + 301_000)).toBe(false);
    expect(verifyWebhook(SECRET, { signature, timestamp: String(ts + 1) }, body, 300, now)).toBe(false);
  });

  it("retries a failing receiver with backoff until it answers 2xx, every try freshly signed", async () => {
    const hook = await receiver(2);
    const outcomes: string[] = [];
    const sender = webhookSender({
      urls: [hook.url],
      secret: SECRET,
      logger: silentLogger,
      baseDelayMs: 20,
      onOutcome: (o) => outcomes.push(o),
    });
    closers.push(() => sender.close());
    sender.send("outbox.sent", { id: "x1", state: "sent" });
    await expect.poll(() => outcomes.at(-1), { timeout: 5000 }).toBe("ok");
    expect(outcomes).toEqual(["retry", "retry", "ok"]);
    expect(hook.received).toHaveLength(3);
    for (const r of hook.received) {
      const ok = verifyWebhook(
        SECRET,
        {
          signature: r.headers[SIGNATURE_HEADER] as string,
          timestamp: r.headers[TIMESTAMP_HEADER] as string,
        },
        r.body,
      );
      expect(ok).toBe(true);
      expect(JSON.parse(r.body)).toMatchObject({ type: "outbox.sent", data: { id: "x1" } });
    }
  });

  it("gives up after the configured tries", async () => {
    const hook = await receiver(100);
    const outcomes: string[] = [];
    const sender = webhookSender({
      urls: [hook.url],
      secret: SECRET,
      logger: silentLogger,
      attempts: 3,
      baseDelayMs: 10,
      onOutcome: (o) => outcomes.push(o),
    });
    closers.push(() => sender.close());
    sender.send("mail.created", {});
    await expect.poll(() => outcomes.at(-1), { timeout: 5000 }).toBe("failed");
    expect(hook.received).toHaveLength(3);
  });
});

describe("webhooks: durable, no redirects, http(s) only, redacted", () => {
  /** Receiver down → sender stopped with the delivery pending → new sender on the same store, receiver up → delivered once. */
  async function survivesRestart(openStore: () => WebhookStore) {
    // A port with nothing listening: every try is refused.
    const probe = await receiver(0);
    await probe.close();
    const url = probe.url;
    const outcomes: string[] = [];
    const first = webhookSender({
      urls: [url],
      secret: SECRET,
      logger: silentLogger,
      store: openStore(),
      // The retry is due after the restart below, not before it.
      baseDelayMs: 400,
      onOutcome: (o) => outcomes.push(o),
    });
    first.send("outbox.sent", { id: "durable-1" });
    await expect.poll(() => outcomes, { timeout: 5000 }).toEqual(["retry"]);
    await first.close();

    const hook = await receiver(0, Number(new URL(url).port));
    const second = webhookSender({
      urls: [url],
      secret: SECRET,
      logger: silentLogger,
      store: openStore(),
      pollMs: 50,
      onOutcome: (o) => outcomes.push(o),
    });
    closers.push(() => second.close());
    await expect.poll(() => hook.received.length, { timeout: 5000 }).toBe(1);
    expect(JSON.parse(hook.received[0]!.body)).toMatchObject({
      type: "outbox.sent",
      data: { id: "durable-1" },
    });
    await expect.poll(() => outcomes.at(-1), { timeout: 2000 }).toBe("ok");
    // Delivered once, then gone from the store: nothing is posted again.
    await new Promise((r) => setTimeout(r, 300));
    expect(hook.received).toHaveLength(1);
  }

  it("a delivery pending while the receiver is down survives a restart and arrives when it is back (SQLite)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "m365-webhooks-"));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const path = webhookStorePath(join(dir, "outbox.db"));
    await survivesRestart(() => sqliteWebhookStore(path));
  });

  it.skipIf(!hasRedis())("the same with OUTBOX=redis (Redis store)", async () => {
    const redis = await startRedis();
    closers.push(() => redis.stop());
    const prefix = `m365:webhooks:test-${Date.now()}`;
    await survivesRestart(() => redisWebhookStore(new Redis(redis.url), prefix));
  });

  it("does not follow a redirect: a 3xx is a failed try, and the target never sees the signed body", async () => {
    const target = await receiver(0);
    const hook = await receiver(0, 0, (res) => {
      res.writeHead(307, { location: target.url });
      res.end();
    });
    const outcomes: string[] = [];
    const sender = webhookSender({
      urls: [hook.url],
      secret: SECRET,
      logger: silentLogger,
      attempts: 2,
      baseDelayMs: 10,
      pollMs: 20,
      onOutcome: (o) => outcomes.push(o),
    });
    closers.push(() => sender.close());
    sender.send("mail.created", {});
    await expect.poll(() => outcomes.at(-1), { timeout: 5000 }).toBe("failed");
    expect(outcomes).toEqual(["retry", "failed"]);
    expect(hook.received).toHaveLength(2);
    expect(target.received).toHaveLength(0);
  });

  it("accepts only http(s) URLs at start, naming WEBHOOK_URLS", () => {
    for (const bad of ["file:///etc/passwd", "ftp://example.com/x", "not a url"]) {
      let error: unknown;
      try {
        loadServerConfig({ WEBHOOK_URLS: bad, WEBHOOK_SECRET: SECRET }, ["--emulator"]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(M365MailError);
      expect(error).toMatchObject({ code: "CONFIG_INVALID" });
      expect(String((error as Error).message)).toContain("WEBHOOK_URLS");
    }
    const ok = loadServerConfig(
      { WEBHOOK_URLS: "https://hooks.example.com/a, http://127.0.0.1:9/b", WEBHOOK_SECRET: SECRET },
      ["--emulator"],
    );
    expect(ok.webhookUrls).toEqual(["https://hooks.example.com/a", "http://127.0.0.1:9/b"]);
  });

  it("logs only the origin of a URL, never its path or query (they may hold a token)", async () => {
    const hook = await receiver(100);
    const url = `${hook.url}/t0ken-in-path?token=SUPERSECRET123`;
    const lines: string[] = [];
    const record = (message: string, data?: Record<string, unknown>) =>
      lines.push(`${message} ${JSON.stringify(data ?? {})}`);
    const sender = webhookSender({
      urls: [url],
      secret: SECRET,
      logger: { debug: record, info: record, warn: record, error: record },
      attempts: 2,
      baseDelayMs: 10,
      pollMs: 20,
      onOutcome: () => {},
    });
    closers.push(() => sender.close());
    sender.send("mail.created", {});
    await expect.poll(() => lines.length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    const origin = new URL(url).origin;
    expect(lines.join("\n")).toContain(origin);
    expect(lines.join("\n")).not.toMatch(/SUPERSECRET123|t0ken-in-path|\/hook/);
  });
});
