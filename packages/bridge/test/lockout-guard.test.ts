import { silentLogger } from "@m365-mail/core";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, clientKey, createLockoutGuard, DEFAULT_LOCKOUT } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  mappedCredentials,
  run,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
} from "./bridge-env.js";

let emulator: TestEmulator;
const FRONTDESK_SECRET = "frontdesk-secret-1";
let bridge: Bridge;
const logger = collectingLogger();

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  // Entra's defaults: 10 failures lock the account for 60 s.
  emulator.admin.setSmartLockout({ threshold: 10, lockoutSeconds: 60 });
  bridge = await startTestBridge(
    emulator,
    {
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      accounts: [
        { credentials: { mode: "passthrough", username: "support@contoso.com" } },
        { credentials: { mode: "passthrough", username: "alice@contoso.com" } },
        { credentials: { mode: "passthrough", username: "nopop@contoso.com" } },
        {
          name: "frontdesk",
          credentials: await mappedCredentials({
            login: "frontdesk",
            secret: FRONTDESK_SECRET,
            username: "noimap@contoso.com",
            passwordEnv: "NOIMAP_PASSWORD",
          }),
        },
      ],
      // Short delays so 100 logins stay quick; the counts are the defaults.
      lockout: { ipDelayMs: 10 },
    },
    logger,
    { ...process.env, NOIMAP_PASSWORD: DEMO_PASSWORD },
  );
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

/** Python: one smtplib login to the bridge from `source`, on a connection of its own; its reply code. */
const LOGIN_ATTEMPT = `
import json, os, smtplib, sys, threading
def attempt(source, user, password):
    s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=60, source_address=(source, 0))
    try:
        s.login(user, password)
        return 235
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    finally:
        try:
            s.quit()
        except Exception:
            pass
`;

/** Python's smtplib logging in once per password from `source` (a loopback address), one after another. */
async function logins(options: { source: string; user: string; passwords: string[] }) {
  const script = `${LOGIN_ATTEMPT}
codes = [attempt(os.environ["SRC"], os.environ["USER_NAME"], pw) for pw in json.loads(sys.stdin.read())]
print(json.dumps(codes))
`;
  const result = await run("python3", ["-c", script], {
    env: { PORT: String(smtpPort(bridge)), SRC: options.source, USER_NAME: options.user },
    input: JSON.stringify(options.passwords),
    timeoutMs: 120_000,
  });
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout) as number[];
}

const grants = (upn: string) => emulator.admin.counts()[`entra.token.password:${upn}`] ?? 0;

describe("lockout guard, through Python smtplib", () => {
  it("100 logins with the same wrong password: one password grant at Entra, account never locked", async () => {
    const upn = "support@contoso.com";
    const before = grants(upn);
    const codes = await logins({
      source: "127.0.0.3",
      user: upn,
      passwords: Array(100).fill("Wrong-Passw0rd"),
    });
    expect(codes.every((c) => c === 535 || c === 454)).toBe(true);
    expect(grants(upn) - before).toBe(1);
    expect(emulator.admin.smartLockoutState(upn).lockedUntil).toBeUndefined();
    // The right password, from another client: works.
    expect(await logins({ source: "127.0.0.2", user: upn, passwords: [DEMO_PASSWORD] })).toEqual([235]);
  });

  it("100 different wrong passwords: at most 3 password grants, never locked, the known right password still works", async () => {
    const upn = "alice@contoso.com";
    // The device's right password was in use before someone typed wrong ones.
    expect(await logins({ source: "127.0.0.5", user: upn, passwords: [DEMO_PASSWORD] })).toEqual([235]);
    const before = grants(upn);
    const wrong = Array.from({ length: 100 }, (_, i) => `Wrong-${i}-Passw0rd`);
    const codes = await logins({ source: "127.0.0.4", user: upn, passwords: wrong });
    expect(codes).not.toContain(235);
    expect(grants(upn) - before).toBeLessThanOrEqual(3);
    expect(emulator.admin.smartLockoutState(upn).lockedUntil).toBeUndefined();
    expect(emulator.admin.counts()[`entra.lockout.locked:${upn}`]).toBeUndefined();
    // The client that kept failing is refused outright by now (454), not asked about its password.
    expect(codes.slice(-10).every((c) => c === 454)).toBe(true);
    expect(await logins({ source: "127.0.0.2", user: upn, passwords: [DEMO_PASSWORD] })).toEqual([235]);
  });

  it("100 different wrong passwords at once, from 25 clients: at most 3 password grants, never locked", async () => {
    const upn = "nopop@contoso.com";
    const before = grants(upn);
    // 25 source addresses, 4 simultaneous connections each (under the per-IP cap of 10).
    const script = `${LOGIN_ATTEMPT}
codes = []
def one(i):
    codes.append(attempt("127.0.2.%d" % (1 + i % 25), os.environ["USER_NAME"], "Concurrent-%d-Passw0rd" % i))
threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(codes))
`;
    const result = await run("python3", ["-c", script], {
      env: { PORT: String(smtpPort(bridge)), USER_NAME: upn },
      timeoutMs: 120_000,
    });
    expect(result.stderr).toBe("");
    const codes = JSON.parse(result.stdout) as number[];
    expect(codes).toHaveLength(100);
    expect(codes.every((c) => c === 535 || c === 454)).toBe(true);
    expect(grants(upn) - before).toBeLessThanOrEqual(3);
    expect(emulator.admin.smartLockoutState(upn).lockedUntil).toBeUndefined();
  });

  it("a password verified before still works from a client the guard refuses", async () => {
    // 127.0.0.4 is refused outright by now (the 100 different wrong passwords above)…
    expect(await logins({ source: "127.0.0.4", user: "nobody@contoso.com", passwords: ["x"] })).toEqual([
      454,
    ]);
    // …but alice's right password, verified in an earlier test, is answered from memory.
    expect(
      await logins({ source: "127.0.0.4", user: "alice@contoso.com", passwords: [DEMO_PASSWORD] }),
    ).toEqual([235]);
  });

  it("a mapped login's secret guessed from many addresses: refused after 20 failures; its verified device still works", async () => {
    // The device logs in once with its secret (verified, then answered from memory).
    expect(await logins({ source: "127.0.4.1", user: "frontdesk", passwords: [FRONTDESK_SECRET] })).toEqual([
      235,
    ]);
    // smtplib tries AUTH PLAIN, then AUTH LOGIN: each guess is two failed logins, each from a new address.
    const codes: number[] = [];
    for (let i = 0; i < 11; i++) {
      const [code] = await logins({
        source: `127.0.5.${i + 1}`,
        user: "frontdesk",
        passwords: [`guess-${i}`],
      });
      codes.push(code!);
    }
    expect(codes).toEqual([...Array(10).fill(535), 454]);
    expect(await logins({ source: "127.0.4.1", user: "frontdesk", passwords: [FRONTDESK_SECRET] })).toEqual([
      235,
    ]);
  });

  it("logs each refusal kind once, clearly, and no password", () => {
    const text = logger.lines.join("\n");
    expect(
      logger.lines.filter((l) => l.includes("new passwords for it are refused") && l.includes("alice@"))
        .length,
    ).toBe(1);
    expect(logger.lines.filter((l) => l.includes("already refused for support@contoso.com")).length).toBe(1);
    expect(
      logger.lines.filter((l) => l.includes("client 127.0.0.4") && l.includes("refusing it")).length,
    ).toBe(1);
    expect(logger.lines.filter((l) => l.includes("client 127.0.0.4") && l.includes("slowing")).length).toBe(
      1,
    );
    expect(text).not.toContain("Wrong-");
    expect(text).not.toContain(DEMO_PASSWORD);
    expect(bridge.metrics()).toMatch(/m365_bridge_lockout_refusals_total\{reason="account-cap"\} \d+/);
  });
});

describe("lockout guard, unit", () => {
  it("a new password is allowed again once the account's failures age out of the window", async () => {
    let now = 1_000_000;
    const guard = createLockoutGuard({
      settings: { ...DEFAULT_LOCKOUT, windowSeconds: 60 },
      logger: silentLogger,
      now: () => now,
    });
    for (let i = 0; i < 3; i++) {
      const release = await guard.admitPasswordGrant("u@x.com", `p${i}`);
      guard.passwordRefused("u@x.com", `p${i}`);
      release();
    }
    await expect(guard.admitPasswordGrant("u@x.com", "right")).rejects.toThrow(/too many wrong passwords/);
    await expect(guard.admitPasswordGrant("u@x.com", "p1")).rejects.toThrow(/already refused/);
    now += 61_000;
    await expect(guard.admitPasswordGrant("u@x.com", "right")).resolves.toBeTypeOf("function");
    await expect(guard.admitPasswordGrant("u@x.com", "p1")).resolves.toBeTypeOf("function");
  });

  it("grants in flight count against the cap: a fourth new password waits for their answers", async () => {
    const guard = createLockoutGuard({ settings: DEFAULT_LOCKOUT, logger: silentLogger });
    const releases = await Promise.all(["p0", "p1", "p2"].map((p) => guard.admitPasswordGrant("u@x.com", p)));
    let fourth: "waiting" | "admitted" | "refused" = "waiting";
    const waiting = guard.admitPasswordGrant("u@x.com", "right").then(
      (release) => {
        fourth = "admitted";
        return release;
      },
      (error: unknown) => {
        fourth = "refused";
        throw error;
      },
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(fourth).toBe("waiting");
    // One of the three was the right password after all: the cap is not reached, the fourth may go.
    releases[0]!();
    await waiting;
    expect(fourth).toBe("admitted");
    // Had the other two failed, a fifth new password would be refused once they are counted.
    guard.passwordRefused("u@x.com", "p1");
    releases[1]!();
    guard.passwordRefused("u@x.com", "p2");
    releases[2]!();
    const fifth = guard.admitPasswordGrant("u@x.com", "another");
    guard.passwordRefused("u@x.com", "right");
    (await waiting)();
    await expect(fifth).rejects.toThrow(/too many wrong passwords/);
  });

  it("slows a failing client down, then refuses it; its logins in flight count as failures to come", async () => {
    const waits: number[] = [];
    const guard = createLockoutGuard({
      settings: { ...DEFAULT_LOCKOUT, ipSlowAfter: 2, ipBlockAfter: 4, ipDelayMs: 100 },
      logger: silentLogger,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    for (let i = 0; i < 4; i++) {
      const release = await guard.admitClient("10.0.0.9");
      guard.clientFailed("10.0.0.9");
      release();
    }
    expect(waits).toEqual([100, 200]);
    await expect(guard.admitClient("10.0.0.9")).rejects.toThrow(/too many failed logins/);
    // Another client: four at once are admitted, a fifth waits until one of them is answered.
    const inFlight = await Promise.all([1, 2, 3, 4].map(() => guard.admitClient("10.0.0.10")));
    let fifth = false;
    const waiting = guard.admitClient("10.0.0.10").then((release) => {
      fifth = true;
      return release;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(fifth).toBe(false);
    guard.clientSucceeded("10.0.0.10");
    inFlight[0]!();
    (await waiting)();
    expect(fifth).toBe(true);
    for (const release of inFlight) release();
  });
});

describe("clientKey", () => {
  it("counts an IPv6 client by its /64 and an IPv4 client (also IPv4-mapped) by its address", () => {
    expect(clientKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
    expect(clientKey("::ffff:10.0.0.5")).toBe("10.0.0.5");
    expect(clientKey("10.0.0.5")).toBe("10.0.0.5");
  });
});
