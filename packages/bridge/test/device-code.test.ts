import { randomBytes } from "node:crypto";
import { chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dovecotPart, graphPart, smtpPart, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, hashSecret, startBridge, validateBridgeConfig } from "../src/index.js";
import {
  bridgeLogin,
  collectingLogger,
  configFor,
  mailbox,
  pythonSmtp,
  run,
  smtpPort,
  textMessage,
  waitFor,
} from "./bridge-env.js";
import { dovecotMissing } from "./relay-helpers.js";

// An account under MFA (the emulator's mfa@contoso.com refuses the password grant): the device logs in
// to the bridge with a local secret, the bridge signs in with a device-code sign-in a person made once.
let emulator: TestEmulator;
let bridge: Bridge | undefined;
let configPath: string;
let configInput: Record<string, unknown>;
const secret = `mfa-scanner-${randomBytes(6).toString("hex")}`;
const logger = collectingLogger();

const env = () => ({ ...process.env, ...emulator.env() });
const send = (subject: string) =>
  pythonSmtp({
    port: smtpPort(bridge!),
    username: "mfa-scanner",
    password: secret,
    from: "mfa@contoso.com",
    to: ["alice@contoso.com"],
    message: textMessage({ from: "mfa@contoso.com", to: "alice@contoso.com", subject }),
  });

const login = (account: string) => bridgeLogin(emulator, configPath, account, "mfa@contoso.com", env());

beforeAll(async () => {
  emulator = await startTestEmulator({
    prefix: "m365-bridge-device-code-",
    parts: [graphPart(), smtpPart(), ...(dovecotMissing ? [] : [dovecotPart()])],
  });
  emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
  const keyFile = join(emulator.dataDir, "token-cache.key");
  await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  configInput = {
    dataDir: join(emulator.dataDir, "bridge"),
    listeners: [
      { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
      ...(dovecotMissing ? [] : [{ protocol: "imap", host: "127.0.0.1", port: 0, security: "plain" }]),
    ],
    tokenCache: { type: "file", path: join(emulator.dataDir, "bridge-tokens.json"), keyFile },
    metrics: { host: "127.0.0.1", port: 0 },
    accounts: [
      {
        name: "mfa-scanner",
        credentials: {
          mode: "mapped",
          login: "mfa-scanner",
          secretHash: await hashSecret(secret),
          username: "mfa@contoso.com",
          signIn: "device-code",
        },
      },
      { credentials: { mode: "passthrough", username: "support@contoso.com" } },
    ],
  };
  configPath = join(emulator.dataDir, "bridge.json");
  await writeFile(configPath, JSON.stringify(configInput));
  bridge = await startBridge(configFor(emulator, configInput), { logger, env: env(), configPath });
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

describe('mapped accounts with "signIn": "device-code" (users under MFA)', () => {
  it("are refused until a person signs in, with the command to run in the reply and in status", async () => {
    // Reported as soon as the bridge starts, before any device tries.
    const atStart = bridge!.status().signInProblems.find((p) => p.account === "mfa-scanner");
    expect(atStart?.code).toBe("SIGN_IN_REQUIRED");
    expect(atStart?.hint).toContain("m365-mail bridge login");
    const result = await send("before login");
    expect(result.stdout).toMatch(/^ERR 535 5\.7\.8 /);
    expect(result.stdout).toContain("SIGN_IN_REQUIRED");
    // The command as it can be pasted: the bridge's own config file and the account.
    expect(result.stdout).toContain(`m365-mail bridge login --config ${configPath} mfa-scanner`);
    const problem = bridge!.status().signInProblems.find((p) => p.account === "mfa-scanner");
    expect(problem?.code).toBe("SIGN_IN_REQUIRED");
    expect(problem?.hint).toContain("m365-mail bridge login");
    // Nothing points at the CLI's own login, whose cache the bridge does not read.
    expect(problem?.message).toBe(
      "[m365-mail] [bridge] account mfa-scanner: no device code sign-in of mfa@contoso.com is stored in the token cache — " +
        problem?.hint,
    );
    expect(result.stdout).not.toContain("m365-mail login --device-code");
    expect(await mailbox(emulator, "alice@contoso.com")).toHaveLength(0);
  });

  it("work once `m365-mail bridge login` stored the sign-in — in the running bridge, without a restart", async () => {
    const done = await login("mfa-scanner");
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain(done.userCode);
    expect(done.stderr).toContain("Sign in as mfa@contoso.com");
    expect(done.stdout).toContain("Signed in: account mfa-scanner acts as mfa@contoso.com");
    expect(done.stdout).toMatch(/graph: token until/);
    expect(done.stdout).toMatch(/outlook: token until/);
    // `bridge status` (the metrics listener's /status) sees the stored sign-in before any device logs in.
    const metricsPort = bridge!.addresses.find((a) => a.protocol === "metrics")!.port;
    const status = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as {
      signInProblems: unknown[];
    };
    expect(status.signInProblems).toEqual([]);

    const subject = `after login ${randomBytes(3).toString("hex")}`;
    expect((await send(subject)).stdout.trim()).toBe("OK");
    const inbox = await waitFor(async () => {
      const mail = await mailbox(emulator, "alice@contoso.com");
      return mail.find((m) => m.subject === subject);
    });
    expect(inbox.from?.value[0]?.address).toBe("mfa@contoso.com");
    expect(bridge!.status().signInProblems).toEqual([]);
    // The wrong local secret is still refused, locally (no grant reaches Entra for it).
    const wrong = await pythonSmtp({
      port: smtpPort(bridge!),
      username: "mfa-scanner",
      password: "not-the-secret",
      from: "mfa@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "mfa@contoso.com", to: "alice@contoso.com", subject: "wrong" }),
    });
    expect(wrong.stdout).toMatch(/^ERR 535 5\.7\.3 /);
  });

  it.skipIf(dovecotMissing)(
    "read their mailbox over IMAP with the local secret (Python's imaplib, LOGIN)",
    async () => {
      const subject = `for the phone ${randomBytes(3).toString("hex")}`;
      await emulator.store.deliver(
        "mfa@contoso.com",
        "inbox",
        Buffer.from(textMessage({ from: "alice@contoso.com", to: "mfa@contoso.com", subject })),
      );
      const port = bridge!.addresses.find((a) => a.protocol === "imap")!.port;
      const script = `
import imaplib, os
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
M.login("mfa-scanner", os.environ["SECRET"])
M.select("INBOX")
typ, data = M.search(None, "SUBJECT", '"' + os.environ["SUBJECT"] + '"')
print("FOUND", len(data[0].split()))
M.logout()
`;
      const result = await run("python3", ["-c", script], {
        env: { PORT: String(port), SECRET: secret, SUBJECT: subject },
      });
      expect(result.stdout.trim(), result.stderr).toBe("FOUND 1");
    },
  );

  it("keep working after a restart from the token cache, with no new device code", async () => {
    const codes = emulator.admin.deviceCodes().length;
    await bridge!.close({ drainMs: 0 });
    bridge = await startBridge(configFor(emulator, configInput), { logger, env: env(), configPath });
    const subject = `after restart ${randomBytes(3).toString("hex")}`;
    expect((await send(subject)).stdout.trim()).toBe("OK");
    await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).some((m) => m.subject === subject),
    );
    expect(emulator.admin.deviceCodes()).toHaveLength(codes);
    // The refresh token is the only secret stored, and it is encrypted: no token or password in clear.
    const { readFile } = await import("node:fs/promises");
    const file = await readFile(join(emulator.dataDir, "bridge-tokens.json"), "utf8");
    expect(file).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./);
    expect(file).not.toContain("refresh");
  });

  it("a revoked sign-in (a password reset, 90 days idle) is refused with the command to run, until a person signs in again", async () => {
    emulator.admin.revokeTokens("mfa@contoso.com");
    // The device's login still passes (its access token is unexpired); the delivery's renewal is refused:
    // 554 5.0.0 Microsoft 365 refused the message (SIGN_IN_REQUIRED AADSTS50173: A person signs in …).
    const refused = await send(`after revocation ${randomBytes(3).toString("hex")}`);
    expect(refused.stdout).toMatch(/^ERR 554 /);
    expect(refused.stdout).toContain("SIGN_IN_REQUIRED AADSTS50173");
    expect(refused.stdout).toContain("m365-mail bridge login --config");
    // The refused refresh token is still in the cache: its presence must not clear the problem.
    const metricsPort = bridge!.addresses.find((a) => a.protocol === "metrics")!.port;
    const status = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as {
      signInProblems: { account: string; code: string; hint?: string }[];
    };
    expect(status.signInProblems).toEqual([
      expect.objectContaining({ account: "mfa-scanner", code: "SIGN_IN_REQUIRED" }),
    ]);
    expect(status.signInProblems[0]!.hint).toContain("m365-mail bridge login");

    const again = await login("mfa-scanner");
    expect(again.code, again.stderr).toBe(0);
    const subject = `signed in again ${randomBytes(3).toString("hex")}`;
    expect((await send(subject)).stdout.trim()).toBe("OK");
    await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).some((m) => m.subject === subject),
    );
    expect(bridge!.status().signInProblems).toEqual([]);
  });

  it("`bridge login` refuses an account that signs in with a password, naming the ones that can", async () => {
    const refused = await login("support@contoso.com");
    expect(refused.code).toBe(2);
    expect(refused.userCode).toBeUndefined();
    expect(refused.stderr).toContain("signs in with the device's password");
    expect(refused.stderr).toContain("mfa-scanner");
  });

  // Only root can give a folder to another user; CI runs as root.
  it.runIf(process.getuid?.() === 0)(
    "`bridge login` as root refuses a token cache that belongs to the service's user, naming the sudo command",
    async () => {
      // The service's folder, as a systemd unit's StateDirectory= leaves it: owned by its user.
      const serviceDir = join(emulator.dataDir, "service-state");
      await mkdir(serviceDir, { recursive: true });
      await chown(serviceDir, 65534, 65534); // Debian's "nobody"
      const servicePath = join(emulator.dataDir, "service-bridge.json");
      await writeFile(
        servicePath,
        JSON.stringify({
          ...configInput,
          tokenCache: { ...(configInput.tokenCache as object), path: join(serviceDir, "tokens.json") },
        }),
      );
      const refused = await bridgeLogin(emulator, servicePath, "mfa-scanner", "mfa@contoso.com", env());
      expect(refused.code).toBe(2);
      // Refused before a code is shown: nobody signs in for a file the bridge could not read.
      expect(refused.userCode).toBeUndefined();
      expect(refused.stderr).toContain(`the token cache ${serviceDir} belongs to nobody`);
      expect(refused.stderr).toContain(
        `sudo -u nobody m365-mail bridge login --config ${servicePath} mfa-scanner`,
      );
    },
  );

  it("a config with a device-code account needs a file or Redis token cache, and exactly one way to sign in", () => {
    const account = (credentials: Record<string, unknown>) => ({
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      accounts: [
        {
          credentials: {
            mode: "mapped",
            login: "x",
            secretHash: "scrypt$abc",
            username: "mfa@contoso.com",
            ...credentials,
          },
        },
      ],
    });
    expect(() => validateBridgeConfig(account({ signIn: "device-code" }), emulator.env())).toThrow(
      /accounts\[0\]\.credentials\.signIn: "device-code" needs a tokenCache of type "file" or "redis"/,
    );
    expect(() =>
      validateBridgeConfig(account({ signIn: "device-code", passwordEnv: "X" }), emulator.env()),
    ).toThrow(/exactly one of "passwordFile", "passwordEnv" and "signIn"/);
    expect(() => validateBridgeConfig(account({ signIn: "browser" }), emulator.env())).toThrow(
      /accounts\[0\]\.credentials\.signIn: must be "device-code"/,
    );
  });
});
