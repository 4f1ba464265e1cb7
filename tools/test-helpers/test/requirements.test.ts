import { describe, expect, it } from "vitest";
import { INSTALL_COMMANDS, isCi, MissingRequirementError, requirements } from "../src/index.js";

describe("requirements: a missing Dovecot, Redis or Chromium", () => {
  it("fails in CI with the install command instead of skipping", () => {
    const needs = requirements({ env: { CI: "true" }, detect: { redis: () => false }, warn: () => {} });
    expect(() => needs("redis")).toThrow(MissingRequirementError);
    expect(() => needs("redis")).toThrow(INSTALL_COMMANDS.redis);
    expect(() => needs("dovecot", () => false)).toThrow(
      "apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd",
    );
  });

  it("skips locally, with one notice per requirement naming the install command", () => {
    const notices: string[] = [];
    const needs = requirements({ env: {}, detect: { chromium: () => false }, warn: (m) => notices.push(m) });
    expect(needs("chromium")).toBe(false);
    expect(needs("chromium")).toBe(false);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(INSTALL_COMMANDS.chromium);
    expect(notices[0]).toContain("in CI this fails the run");
  });

  it("answers true when installed, in CI or not, without a notice", () => {
    const notices: string[] = [];
    for (const env of [{ CI: "true" }, {}]) {
      const needs = requirements({ env, detect: { redis: () => true }, warn: (m) => notices.push(m) });
      expect(needs("redis")).toBe(true);
      expect(needs("dovecot", () => true)).toBe(true);
    }
    expect(notices).toEqual([]);
  });

  it("reads CI as most CIs set it", () => {
    expect([isCi({ CI: "true" }), isCi({ CI: "1" }), isCi({ CI: "TRUE" })]).toEqual([true, true, true]);
    expect([isCi({}), isCi({ CI: "false" }), isCi({ CI: "0" }), isCi({ CI: "" })]).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});
