import { ImapFlow } from "imapflow";
import { describe, expect, it } from "vitest";

describe("imapflow internals SaslPreferringImapFlow relies on", () => {
  // Canary for imapflow upgrades: the XOAUTH2 preference overrides this internal step.
  it("ImapFlow.prototype.authenticate exists and checks capabilities", () => {
    const authenticate = (ImapFlow.prototype as unknown as { authenticate?: unknown }).authenticate;
    expect(typeof authenticate).toBe("function");
    expect(String(authenticate)).toContain("AUTHENTICATE");
  });
});
