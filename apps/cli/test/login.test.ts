import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJson, runCli, spawnCli, startTestEmulator, type TestEmulator, until } from "./helpers.js";

// ROPC cannot sign this user in (MFA required); the device code flow can.
const MFA_USER = "mfa@contoso.com";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator(undefined, { dovecot: false });
  emu.emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
});
afterAll(() => emu?.stop());

/** The emulator's settings without any password: a device-code sign-in needs none. */
function envFor(username: string): Record<string, string> {
  const { M365_PASSWORD: _password, ...env } = emu.env(username);
  return env;
}

/** The user code from the `{"type":"device-code",…}` line `login --json` prints first. */
async function userCodeOf(login: ReturnType<typeof spawnCli>): Promise<string> {
  let userCode: string | undefined;
  await until(() => {
    const line = login
      .output()
      .stdout.split("\n")
      .find((l) => l.includes('"device-code"'));
    if (line) userCode = JSON.parse(line).userCode;
    return userCode !== undefined;
  }, "the device code line");
  return userCode!;
}

const JWT = /eyJ[\w-]{5,}\.eyJ[\w-]{5,}\./;

describe("m365-mail login --device-code", () => {
  it("prints the code, waits for the approval, stores the sign-in; then commands run with --auth device-code", async () => {
    const env = envFor(MFA_USER);
    const login = spawnCli(["login", "--device-code", "--json"], { env });
    const userCode = await userCodeOf(login);
    const issued = JSON.parse(login.output().stdout.split("\n")[0]!);
    expect(issued).toMatchObject({
      type: "device-code",
      verificationUri: `${emu.emulator.authorityHost}/devicelogin`,
    });
    expect(issued.message).toContain(userCode);
    // The CLI keeps polling until a person approves.
    await new Promise((r) => setTimeout(r, 1500));
    expect(login.output().code).toBeNull();
    emu.emulator.admin.approveDeviceCode(userCode, MFA_USER);
    expect(await login.exited).toBe(0);
    const lines = login.output().stdout.trim().split("\n");
    const done = JSON.parse(lines[lines.length - 1]!);
    expect(done).toMatchObject({ type: "signed-in", username: MFA_USER });
    expect(done.tokens.graph.user).toBe(MFA_USER);
    expect(done.tokens.outlook.audience).toBe("https://outlook.office.com");
    expect(login.output().stdout + login.output().stderr).not.toMatch(JWT);

    // Stored encrypted beside the config file, key and cache readable by this user only.
    const cacheFile = join(emu.home, ".config", "m365-mail", "token-cache.json");
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(emu.home, ".config", "m365-mail", "token-cache.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(cacheFile, "utf8")).not.toMatch(JWT);

    // Another process uses the stored sign-in, headless: no new code, no password.
    emu.emulator.admin.resetCounts();
    const token = await runCli(["token", "--json", "--auth", "device-code"], { env });
    expect(token.code).toBe(0);
    expect(parseJson(token).tokens.map((t: { user: string }) => t.user)).toEqual([MFA_USER, MFA_USER]);
    const folders = await runCli(["folders", "--json"], { env: { ...env, M365_AUTH: "device-code" } });
    expect(folders.code).toBe(0);
    expect(parseJson(folders).folders.map((f: { name: string }) => f.name)).toContain("Inbox");
    const counts = emu.emulator.admin.counts();
    expect(counts["entra.devicecode"]).toBeUndefined();
    expect(counts["entra.token.password"]).toBeUndefined();

    // Revoked: Graph refuses the stored access token, the refresh is refused too; exit 3 says what to run.
    emu.emulator.admin.revokeTokens(MFA_USER);
    const revoked = await runCli(["folders", "--json", "--auth", "device-code"], { env });
    expect(revoked.code).toBe(3);
    const { error } = parseJson(revoked);
    expect(error.code).toBe("REFRESH_EXPIRED");
    expect(error.hint).toContain("m365-mail login --device-code");
  });

  it("without a stored sign-in --auth device-code exits 3 (SIGN_IN_REQUIRED); login without --device-code is a usage error", async () => {
    const env = {
      ...envFor("alice@contoso.com"),
      M365_TOKEN_CACHE_FILE: join(emu.home, "nowhere", "cache.json"),
    };
    const none = await runCli(["token", "--auth", "device-code"], { env });
    expect(none.code).toBe(3);
    expect(none.stderr).toContain("m365-mail login --device-code");
    const usage = await runCli(["login"], { env });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--device-code");
    const bad = await runCli(["token", "--auth", "magic"], { env });
    expect(bad.code).toBe(2);
  });

  it("a declined code exits 3 with DEVICE_CODE_DECLINED", async () => {
    const env = {
      ...envFor("alice@contoso.com"),
      M365_TOKEN_CACHE_FILE: join(emu.home, "declined", "cache.json"),
    };
    const login = spawnCli(["login", "--device-code", "--json"], { env });
    const userCode = await userCodeOf(login);
    emu.emulator.admin.denyDeviceCode(userCode);
    expect(await login.exited).toBe(3);
    expect(login.output().stdout).toContain("DEVICE_CODE_DECLINED");
  });

  it("doctor for a user ROPC cannot serve (MFA) points to the device code provider", async () => {
    const result = await runCli(["doctor", "--json"], { env: emu.env(MFA_USER) });
    expect(result.code).toBe(1);
    const signIn = parseJson(result).checks.find((c: { id: string }) => c.id === "sign-in");
    expect(signIn.error.code).toBe("MFA_REQUIRED");
    expect(signIn.fix).toContain("m365-mail login --device-code");
    expect(signIn.fix).toContain("M365_AUTH=device-code");
  });
});

describe("m365-mail watch and sign-in health", () => {
  it("prints a sign-in problem once when the user becomes MFA-required, and ends with exit 3", async () => {
    // Two-second tokens: the watch asks Entra ID again within seconds, as it would after an hour.
    emu.emulator.admin.setTokenLifetime(2);
    const watcher = spawnCli(["watch", "--via", "graph", "--interval", "1", "--json"], {
      env: emu.env("alice@contoso.com"),
      cwd: emu.home,
    });
    try {
      await until(() => watcher.output().stderr.includes("watching inbox"), "the watcher to start");
      emu.emulator.admin.updateUser("alice@contoso.com", { mfa: true });
      expect(await watcher.exited).toBe(3);
      const lines = watcher
        .output()
        .stdout.trim()
        .split("\n")
        // One record per line; the closing error document is pretty-printed over several lines.
        .filter((l) => l.startsWith('{"'))
        .map((l) => JSON.parse(l));
      const health = lines.filter((l) => String(l.type).startsWith("sign-in."));
      expect(health).toHaveLength(1);
      expect(health[0]).toMatchObject({
        type: "sign-in.problem",
        code: "MFA_REQUIRED",
        username: "alice@contoso.com",
      });
      expect(health[0].hint).toContain("login --device-code");
      expect(watcher.output().stdout).toContain('"code": "MFA_REQUIRED"');
    } finally {
      watcher.child.kill("SIGKILL");
      emu.emulator.admin.updateUser("alice@contoso.com", { mfa: false });
      emu.emulator.admin.setTokenLifetime(3600);
    }
  });
});
