import { describe, expect, it } from "vitest";
import {
  forgetSecret,
  holdSecret,
  REDACTED,
  redact,
  registeredSecretCount,
  registerSecret,
} from "../src/redact.js";

describe("the redactor's secret set (issue 12: it grew with every token refresh)", () => {
  it("holds rotating secrets in a bounded set, newest kept, while permanent ones stay", () => {
    registerSecret("a-password-for-good");
    const { permanent, rotatingLimit } = registeredSecretCount();
    for (let i = 0; i < rotatingLimit + 500; i++) registerSecret(`refresh-token-${i}`, { rotating: true });
    const counts = registeredSecretCount();
    expect(counts.rotating).toBe(rotatingLimit);
    expect(counts.permanent).toBe(permanent);
    // The oldest went first; the newest and the password are still redacted.
    expect(redact("refresh-token-0 ")).toBe("refresh-token-0 ");
    expect(redact(`x refresh-token-${rotatingLimit + 499} y`)).toBe(`x ${REDACTED} y`);
    expect(redact("a-password-for-good")).toBe(REDACTED);
    for (let i = 0; i < rotatingLimit + 500; i++) forgetSecret(`refresh-token-${i}`);
    expect(registeredSecretCount().rotating).toBe(0);
    forgetSecret("a-password-for-good");
  });

  it("a token registered as rotating stays rotating when registered again without the option", () => {
    const before = registeredSecretCount();
    registerSecret("access-token-abc", { rotating: true });
    registerSecret("access-token-abc");
    expect(registeredSecretCount().permanent).toBe(before.permanent);
    expect(registeredSecretCount().rotating).toBe(before.rotating + 1);
    forgetSecret("access-token-abc");
    expect(redact("access-token-abc")).toBe("access-token-abc");
  });

  it("a held secret is redacted until every holder released it, then no longer kept", () => {
    const before = registeredSecretCount().held;
    const first = holdSecret("Wrong-Passw0rd-7");
    const second = holdSecret("Wrong-Passw0rd-7");
    expect(redact("x Wrong-Passw0rd-7")).toBe(`x ${REDACTED}`);
    first();
    first();
    expect(redact("x Wrong-Passw0rd-7")).toBe(`x ${REDACTED}`);
    second();
    expect(redact("x Wrong-Passw0rd-7")).toBe("x Wrong-Passw0rd-7");
    expect(registeredSecretCount().held).toBe(before);
  });
});
