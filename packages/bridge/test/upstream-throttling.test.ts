import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createBridgeMetrics } from "../src/metrics.js";
import { shareThrottling } from "../src/relay/shared-throttling.js";
import { createUpstreamThrottling, MAX_HOLD_MS } from "../src/relay/upstream-throttling.js";
import { collectingLogger } from "./bridge-env.js";

describe("upstream throttling", () => {
  it("holds a mailbox per protocol for the back-off, at most 15 minutes, logging each episode once", () => {
    let now = 1_000_000;
    const logger = collectingLogger();
    const metrics = createBridgeMetrics();
    const throttling = createUpstreamThrottling({ logger, metrics, now: () => now });
    expect(throttling.any()).toBe(false);
    throttling.note("imap", "Support@Contoso.com", 90_000);
    throttling.note("imap", "support@contoso.com", 120_000); // the same episode, longer
    throttling.note("imap", "support@contoso.com", 10_000); // shorter: no change
    expect(throttling.remainingMs("imap", "support@contoso.com")).toBe(120_000);
    expect(throttling.remainingMs("pop3", "support@contoso.com")).toBe(0);
    expect(throttling.remainingMs("imap", "alice@contoso.com")).toBe(0);
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toHaveLength(1);
    expect(metrics.get("m365_bridge_upstream_throttled_total", { protocol: "imap" })).toBe(1);

    throttling.note("pop3", "support@contoso.com", 24 * 3600_000);
    expect(throttling.remainingMs("pop3", "support@contoso.com")).toBe(MAX_HOLD_MS);
    now += 120_000;
    expect(throttling.remainingMs("imap", "support@contoso.com")).toBe(0);
    expect(throttling.list()).toEqual([
      {
        protocol: "pop3",
        mailbox: "support@contoso.com",
        until: new Date(1_000_000 + MAX_HOLD_MS).toISOString(),
      },
    ]);
    now += MAX_HOLD_MS;
    expect(throttling.any()).toBe(false);
    // A new episode is logged again.
    throttling.note("imap", "support@contoso.com", 5_000);
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toHaveLength(3);
  });

  it("tells observers of the holds it meets itself, not of those the fleet reports", () => {
    const logger = collectingLogger();
    const metrics = createBridgeMetrics();
    const throttling = createUpstreamThrottling({ logger, metrics });
    const seen: string[] = [];
    const stop = throttling.observe((protocol, mailbox, ms) => seen.push(`${protocol} ${mailbox} ${ms}`));
    throttling.note("imap", "alice@contoso.com", 5_000, "fleet");
    throttling.note("imap", "support@contoso.com", 24 * 3600_000);
    expect(seen).toEqual([`imap support@contoso.com ${MAX_HOLD_MS}`]);
    expect(metrics.get("m365_bridge_upstream_throttled_total", { protocol: "imap" })).toBe(1);
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toEqual([
      expect.stringContaining(
        "Another bridge reports that Microsoft 365 is throttling IMAP for alice@contoso.com",
      ),
      expect.stringContaining("Microsoft 365 is throttling IMAP for support@contoso.com"),
    ]);
    stop();
    throttling.note("pop3", "support@contoso.com", 5_000);
    expect(seen).toHaveLength(1);
  });

  it("without Redis, holds stay this bridge's own and the warning comes once", async () => {
    const logger = collectingLogger();
    const throttling = createUpstreamThrottling({ logger });
    // Nothing listens on port 1: every Redis command fails at once.
    const redis = new Redis("redis://127.0.0.1:1", { maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on("error", () => {});
    const shared = shareThrottling(throttling, redis, logger);
    await shared.ready;
    throttling.note("imap", "support@contoso.com", 5_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(throttling.remainingMs("imap", "support@contoso.com")).toBeGreaterThan(0);
    const warnings = logger.lines.filter((l) => l.includes("not shared with the other bridges"));
    expect(warnings).toHaveLength(1);
    await shared.close();
    redis.disconnect();
  });
});
