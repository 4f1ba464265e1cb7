import { describe, expect, it } from "vitest";
import { renewalTime } from "../src/imap-connection.js";

describe("renewalTime", () => {
  const now = 1_000_000_000_000;
  it("renews renewBefore ahead of expiry for normal tokens", () => {
    expect(renewalTime(new Date(now + 3600_000), 300_000, now)).toBe(now + 3300_000);
  });
  it("waits at least half of a short token's remaining life (no reconnect loop)", () => {
    expect(renewalTime(new Date(now + 20_000), 300_000, now)).toBe(now + 10_000);
  });
  it("never schedules in the past for an expired token", () => {
    expect(renewalTime(new Date(now - 5_000), 300_000, now)).toBe(now + 1000);
  });
});
