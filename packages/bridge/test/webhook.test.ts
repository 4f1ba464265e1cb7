/**
 * The webhook is how a person hears of a problem: a receiver that is briefly down (a restart, a 503 from
 * its proxy) still gets the event, once; one that refuses it for good (404) is not asked again.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createWebhook } from "../src/webhook.js";
import { collectingLogger, startWebhookReceiver, waitFor } from "./bridge-env.js";

const receiver = (statuses: number[], port?: number) =>
  startWebhookReceiver({ statuses, ...(port ? { port } : {}) });

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe("webhook", () => {
  it("an event the receiver answers 503, then 429, is posted again and arrives once", async () => {
    const r = await receiver([503, 429]);
    const logger = collectingLogger();
    const webhook = createWebhook(r.url, logger, [50, 50, 50]);
    cleanups.push(r.close, () => webhook.close());
    webhook.post({ type: "sign-in-problem", account: "scanner", code: "MFA_REQUIRED" });
    await waitFor(async () => r.events.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.events).toEqual([{ type: "sign-in-problem", account: "scanner", code: "MFA_REQUIRED" }]);
    expect(r.posts()).toBe(3);
    expect(logger.lines.filter((l) => l.includes("trying again"))).toHaveLength(2);
  });

  it("a receiver that is not listening yet gets the event once it is", async () => {
    // A port that was free a moment ago: nothing listens there until the receiver starts on it.
    const first = await receiver([]);
    const { url } = first;
    await first.close();
    const webhook = createWebhook(url, collectingLogger(), [300, 300, 300]);
    cleanups.push(() => webhook.close());
    webhook.post({ type: "spool-message-failed", id: "graph.1" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = await receiver([], Number(new URL(url).port));
    cleanups.push(late.close);
    await waitFor(async () => late.events.length > 0, 5_000);
    expect(late.events).toEqual([{ type: "spool-message-failed", id: "graph.1" }]);
  });

  it("a 404 is not asked again, and after the last retry the event is given up with one line", async () => {
    const notFound = await receiver([404]);
    const down = await receiver([500, 500, 500, 500]);
    const logger = collectingLogger();
    cleanups.push(notFound.close, down.close);
    createWebhook(notFound.url, logger, [50]).post({ type: "a" });
    createWebhook(down.url, logger, [50]).post({ type: "b" });
    await waitFor(async () => logger.lines.some((l) => l.includes("it is not sent again")));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(notFound.posts()).toBe(1);
    expect(down.posts()).toBe(2);
    expect(logger.lines.filter((l) => l.includes("answered 404"))).toHaveLength(1);
  });

  it("close() drops the retries still waiting", async () => {
    const r = await receiver([503]);
    cleanups.push(r.close);
    const webhook = createWebhook(r.url, collectingLogger(), [200]);
    webhook.post({ type: "x" });
    await waitFor(async () => r.posts() === 1);
    webhook.close();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(r.posts()).toBe(1);
  });
});
