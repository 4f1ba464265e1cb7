import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { silentLogger } from "@m365-mail/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  SIGNATURE_HEADER,
  signWebhook,
  TIMESTAMP_HEADER,
  verifyWebhook,
  webhookSender,
} from "../src/events/webhooks.js";

const SECRET = "whsec-0123456789abcdef-long-enough";
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** A receiver on 127.0.0.1 that fails the first `failures` requests with 503. */
async function receiver(failures: number) {
  const received: Array<{ headers: IncomingMessage["headers"]; body: string }> = [];
  let calls = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      calls++;
      received.push({ headers: req.headers, body });
      res.statusCode = calls <= failures ? 503 : 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
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
