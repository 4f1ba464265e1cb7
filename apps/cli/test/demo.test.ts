import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { baseEnv, expectNoSecrets, HAS_DOVECOT, parseJson, runCli } from "./helpers.js";

const leftovers = (): string[] => {
  try {
    return execFileSync("pgrep", ["-af", "m365-mail-demo-"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
};

let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "m365-cli-demo-"));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

it("demo: every capability ends ✓ (IMAP/POP3 skipped with the install command where Dovecot is missing)", async () => {
  const result = await runCli(["demo", "--json"], { env: baseEnv(home), cwd: home, timeoutMs: 120_000 });
  expectNoSecrets(result);
  const { ok, doctor, steps } = parseJson(result);
  const names = steps.map((s: { name: string; via: string }) => `${s.name} ${s.via}`);
  expect(names).toEqual([
    "calendar Graph",
    "folders Graph",
    "send Graph",
    "send SMTP",
    "read Graph",
    "read IMAP",
    "read POP3",
    "watch IMAP",
    "watch Graph",
    "bridge: send SMTP",
    "bridge: read IMAP",
    "bridge: MFA user SMTP",
  ]);
  for (const step of steps) {
    const imapOrPop = step.via === "IMAP" || step.via === "POP3";
    expect(step.status, `${step.name} ${step.via}: ${step.detail}`).toBe(
      HAS_DOVECOT || !imapOrPop ? "pass" : "skip",
    );
    if (!HAS_DOVECOT && imapOrPop) expect(step.detail).toContain("apt-get install");
  }
  expect(doctor.checks.every((c: { status: string }) => c.status !== "fail")).toBe(true);
  expect(ok).toBe(true);
  expect(result.code).toBe(0);
  // Dovecot runs from the demo's temporary data folder: nothing of it may be left running.
  expect(leftovers()).toEqual([]);
});

it("without Dovecot: a readable transcript, IMAP and POP3 skipped with the install command, the rest ✓", async () => {
  // M365_DOVECOT_BIN pointing nowhere is how the emulator sees a machine without Dovecot.
  const env = { ...baseEnv(home), M365_DOVECOT_BIN: join(home, "no-dovecot-here") };
  const result = await runCli(["demo"], { env, cwd: home, timeoutMs: 120_000 });
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toContain("1. doctor");
  expect(result.stdout).toMatch(/✓ 1\. Get an auth token via the ROPC flow/);
  const install =
    "apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd";
  expect(result.stdout).toMatch(
    /– 6\. Use IMAP authenticated with XOAUTH2 .*skipped: Dovecot is not installed/,
  );
  for (const via of ["IMAP", "POP3"]) {
    expect(result.stdout).toMatch(
      new RegExp(`– read\\s+${via}\\s+skipped: Dovecot is not installed — install it with: ${install}`),
    );
  }
  expect(result.stdout).toMatch(/✓ watch\s+Graph\s+saw "/);
  // The bridge's SMTP client works without Dovecot; its IMAP client needs it.
  expect(result.stdout).toMatch(/✓ bridge: send\s+SMTP\s+AUTH PLAIN with the password → Graph sendMail/);
  expect(result.stdout).toMatch(
    /✓ bridge: MFA user\s+SMTP\s+device code approved once for mfa@contoso\.com, then AUTH PLAIN with a local secret → Graph sendMail/,
  );
  expect(result.stdout).toContain("capabilities: 8 passed, 4 skipped");
  expect(result.stdout).toContain("the emulator and everything the demo started are stopped.");
});
