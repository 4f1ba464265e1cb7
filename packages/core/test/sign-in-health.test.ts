import { describe, expect, it } from "vitest";
import { M365MailError } from "../src/errors.js";
import { isSignInProblem, type SignInHealthEvent, signInHealthTracker } from "../src/sign-in-health.js";

const refusal = (code: "MFA_REQUIRED" | "ACCOUNT_LOCKED", serverCode?: string) =>
  new M365MailError(code, "sign-in refused", { source: "auth-ropc", hint: "exclude the user", serverCode });

describe("signInHealthTracker", () => {
  it("emits one problem per change of state and one recovered, whatever the number of failures", () => {
    const tracker = signInHealthTracker("auth-ropc", "support@contoso.com");
    const events: SignInHealthEvent[] = [];
    tracker.onHealthChange((e) => events.push(e));
    expect(tracker.healthState()).toEqual({ status: "unknown" });

    tracker.succeeded();
    tracker.failed(refusal("MFA_REQUIRED", "AADSTS50076"));
    tracker.failed(refusal("MFA_REQUIRED", "AADSTS50079"));
    tracker.failed(new M365MailError("TIMEOUT", "slow")); // an outage changes nothing
    tracker.failed(refusal("ACCOUNT_LOCKED"));
    tracker.failed(refusal("ACCOUNT_LOCKED"));
    tracker.succeeded();
    tracker.succeeded();

    expect(events.map((e) => `${e.type}:${e.code}`)).toEqual([
      "problem:MFA_REQUIRED",
      "problem:ACCOUNT_LOCKED",
      "recovered:ACCOUNT_LOCKED",
    ]);
    expect(events[0]).toMatchObject({
      provider: "auth-ropc",
      username: "support@contoso.com",
      hint: "exclude the user",
      serverCode: "AADSTS50076",
    });
    expect(tracker.healthState().status).toBe("ok");
  });

  it("keeps notifying the other listeners when one throws, and stops after unsubscribing", () => {
    const tracker = signInHealthTracker("auth-device-code", "a@contoso.com");
    const seen: string[] = [];
    tracker.onHealthChange(() => {
      throw new Error("listener bug");
    });
    const stop = tracker.onHealthChange((e) => seen.push(e.type));
    expect(() => tracker.failed(refusal("MFA_REQUIRED"))).not.toThrow();
    stop();
    tracker.succeeded();
    expect(seen).toEqual(["problem"]);
    const state = tracker.healthState();
    expect(state.status).toBe("ok");
  });

  it("counts only typed refusals that retrying cannot cure", () => {
    expect(isSignInProblem(refusal("MFA_REQUIRED"))).toBe(true);
    expect(isSignInProblem(new M365MailError("REFRESH_EXPIRED", "x"))).toBe(false); // ROPC re-signs in
    expect(isSignInProblem(new M365MailError("REFRESH_EXPIRED", "x", { retryable: false }))).toBe(true);
    expect(isSignInProblem(new M365MailError("ABORTED", "x"))).toBe(false);
    expect(isSignInProblem(new Error("plain"))).toBe(false);
  });
});
