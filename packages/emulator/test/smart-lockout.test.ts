import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { passwordGrant, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

const user = "alice@contoso.com";

describe("Entra smart lockout", () => {
  it("locks the account after 10 different wrong passwords, answers AADSTS50053 for the lockout, then lets the right password in", async () => {
    emulator.admin.setSmartLockout({ threshold: 10, lockoutSeconds: 2 });
    for (let i = 0; i < 9; i++) {
      const answer = await passwordGrant(emulator, { username: user, password: `wrong-${i}` });
      expect(answer.json.error_codes).toEqual([50126]);
    }
    expect(emulator.admin.smartLockoutState(user).failures).toBe(9);
    const tenth = await passwordGrant(emulator, { username: user, password: "wrong-9" });
    expect(tenth.json.error_codes).toEqual([50126]);
    // Locked now: even the right password is refused.
    const locked = await passwordGrant(emulator, { username: user });
    expect(locked.status).toBe(400);
    expect(locked.json.error_codes).toEqual([50053]);
    expect(emulator.admin.smartLockoutState(user).lockedUntil).toBeDefined();
    expect(emulator.admin.counts()[`entra.lockout.locked:${user}`]).toBe(1);
    await new Promise((r) => setTimeout(r, 2_100));
    const after = await passwordGrant(emulator, { username: user });
    expect(after.status).toBe(200);
  });

  it("does not count the same wrong password twice (Entra tracks the last three bad password hashes)", async () => {
    emulator.admin.setSmartLockout({ threshold: 3, lockoutSeconds: 60 });
    for (let i = 0; i < 20; i++)
      await passwordGrant(emulator, { username: "support@contoso.com", password: "same-wrong" });
    expect(emulator.admin.smartLockoutState("support@contoso.com").failures).toBe(1);
    expect((await passwordGrant(emulator, { username: "support@contoso.com" })).status).toBe(200);
  });
});
