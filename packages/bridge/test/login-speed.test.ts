import { readFile } from "node:fs/promises";
import { memoryTokenCache } from "@m365-mail/auth-ropc";
import { silentLogger } from "@m365-mail/core";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createBridgeMetrics,
  createCredentials,
  createLockoutGuard,
  createSignInProblems,
  DEFAULT_LOCKOUT,
  hashSecret,
} from "../src/index.js";
import { configFor, DEMO_PASSWORD, startSmtpEmulator } from "./bridge-env.js";

let emulator: TestEmulator;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
});
afterAll(async () => {
  await emulator?.stop();
});

const p50 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** The bridge's accounts side: support@ in passthrough, and a mapped login "scanner" (alice@). */
async function credentialsWithScanner() {
  const config = configFor(emulator, {
    accounts: [
      { credentials: { mode: "passthrough", username: "support@contoso.com" } },
      {
        name: "scanner",
        credentials: {
          mode: "mapped",
          login: "scanner",
          secretHash: await hashSecret("scanner-secret"),
          username: "alice@contoso.com",
          passwordEnv: "ALICE_PW",
        },
      },
    ],
  });
  const metrics = createBridgeMetrics();
  return createCredentials({
    config,
    cache: memoryTokenCache(),
    ca: await readFile(config.m365.caFile!, "utf8"),
    guard: createLockoutGuard({ settings: DEFAULT_LOCKOUT, logger: silentLogger }),
    problems: createSignInProblems({ logger: silentLogger, metrics }),
    metrics,
    logger: silentLogger,
    env: { ALICE_PW: DEMO_PASSWORD },
  });
}

describe("login cost with a warm token", () => {
  it("a repeat login costs well under 5 ms at p50 (no scrypt, no ROPC): passthrough and mapped", async () => {
    const credentials = await credentialsWithScanner();
    const client = { address: "127.0.0.1", port: 40000, protocol: "imap" as const, tls: false };
    const results: Record<string, number> = {};
    for (const [user, password] of [
      ["support@contoso.com", DEMO_PASSWORD],
      ["scanner", "scanner-secret"],
    ] as const) {
      await credentials.authenticate(user, password, client); // the cold login: ROPC or scrypt
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const start = performance.now();
        const signedIn = await credentials.authenticate(user, password, client);
        times.push(performance.now() - start);
        expect(signedIn.mailbox).toMatch(/@contoso\.com$/);
      }
      results[user] = p50(times);
    }
    console.log(
      `login p50 with a warm token: passthrough ${results["support@contoso.com"]!.toFixed(3)} ms, mapped ${results.scanner!.toFixed(3)} ms`,
    );
    expect(results["support@contoso.com"]).toBeLessThan(5);
    expect(results.scanner).toBeLessThan(5);
    // Only the cold logins reached Entra.
    expect(emulator.admin.counts()["entra.token.password:support@contoso.com"]).toBe(1);
    expect(emulator.admin.counts()["entra.token.password:alice@contoso.com"]).toBe(1);
    await credentials.dispose();
  });

  it("an unknown login name takes as long to refuse as a mapped login's wrong secret (names do not show by timing)", async () => {
    const credentials = await credentialsWithScanner();
    // Each attempt from an address of its own, so the guard's slow-down for a failing client stays out.
    let host = 0;
    const refusedIn = async (user: string) => {
      const client = { address: `10.0.7.${++host}`, port: 40000, protocol: "smtp" as const, tls: false };
      const start = performance.now();
      await expect(credentials.authenticate(user, "a-wrong-guess", client)).rejects.toMatchObject({
        code: "AUTH_FAILED",
      });
      return performance.now() - start;
    };
    await refusedIn("nobody"); // the first unknown name also hashes the decoy once
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await refusedIn("scanner"));
      unknown.push(await refusedIn(`nobody${i}`));
    }
    // Without the decoy check an unknown name is refused in well under a millisecond, a known one in
    // scrypt's 50–100 ms.
    expect(p50(unknown)).toBeGreaterThan(p50(known) * 0.5);
    await credentials.dispose();
  });
});
