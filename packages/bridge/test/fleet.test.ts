import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { needs, startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, hashSecret } from "../src/index.js";
import {
  bridgeLogin,
  DEMO_PASSWORD,
  pythonSmtp,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
} from "./bridge-env.js";

let emulator: TestEmulator;
let redis: TestRedis;
const bridges: Bridge[] = [];

const hasRedis = needs("redis");

beforeAll(async () => {
  if (!hasRedis) return;
  emulator = await startSmtpEmulator();
  redis = await startRedis({ prefix: "m365-bridge-fleet-" });
});
afterAll(async () => {
  for (const b of bridges) await b.close({ drainMs: 0 });
  await emulator?.stop();
  await redis?.stop();
});

describe.runIf(hasRedis)("several bridges, one Redis token cache", () => {
  it("the second bridge signs the same user in without a second password grant", async () => {
    const env = { ...process.env, M365_CACHE_KEY: randomBytes(32).toString("base64") };
    for (let i = 0; i < 2; i++) {
      bridges.push(
        await startTestBridge(
          emulator,
          {
            listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
            tokenCache: { type: "redis", url: redis.url },
            accounts: [{ credentials: { mode: "passthrough", username: "support@contoso.com" } }],
          },
          undefined,
          env,
        ),
      );
    }
    const send = (bridge: Bridge) =>
      pythonSmtp({
        port: smtpPort(bridge),
        username: "support@contoso.com",
        password: DEMO_PASSWORD,
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({
          from: "support@contoso.com",
          to: "alice@contoso.com",
          subject: `fleet ${randomBytes(3).toString("hex")}`,
        }),
      });
    expect((await send(bridges[0]!)).stdout.trim()).toBe("OK");
    const grants = emulator.admin.counts()["entra.token.password:support@contoso.com"];
    expect(grants).toBe(1);
    expect((await send(bridges[1]!)).stdout.trim()).toBe("OK");
    expect(emulator.admin.counts()["entra.token.password:support@contoso.com"]).toBe(1);
    // A wrong password on the second bridge cannot use the shared sign-in: it goes to Entra and is refused.
    const wrong = await pythonSmtp({
      port: smtpPort(bridges[1]!),
      username: "support@contoso.com",
      password: "Wrong-fleet-1",
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: "x",
    });
    expect(wrong.stdout.trim()).toMatch(/^ERR 535 5\.7\.3/);
  });

  it("a device-code account signed in once (`bridge login`) serves every bridge of the fleet", async () => {
    emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
    const env = {
      ...process.env,
      ...emulator.env(),
      M365_CACHE_KEY: randomBytes(32).toString("base64"),
    };
    const secret = `fleet-mfa-${randomBytes(6).toString("hex")}`;
    const input = {
      listeners: [{ protocol: "smtp" as const, host: "127.0.0.1", port: 0, security: "plain" as const }],
      tokenCache: { type: "redis" as const, url: redis.url },
      accounts: [
        {
          name: "mfa-fleet",
          credentials: {
            mode: "mapped" as const,
            login: "mfa-fleet",
            secretHash: await hashSecret(secret),
            username: "mfa@contoso.com",
            signIn: "device-code" as const,
          },
        },
      ],
    };
    const fleet = [await startTestBridge(emulator, input, undefined, env)];
    fleet.push(await startTestBridge(emulator, input, undefined, env));
    bridges.push(...fleet);
    const configPath = join(emulator.dataDir, "fleet-bridge.json");
    await writeFile(configPath, JSON.stringify(input));
    const codes = emulator.admin.deviceCodes().length;
    const login = await bridgeLogin(emulator, configPath, "mfa-fleet", "mfa@contoso.com", env);
    expect(login.code, login.stderr).toBe(0);
    for (const bridge of fleet) {
      const result = await pythonSmtp({
        port: smtpPort(bridge),
        username: "mfa-fleet",
        password: secret,
        from: "mfa@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({ from: "mfa@contoso.com", to: "alice@contoso.com", subject: "fleet mfa" }),
      });
      expect(result.stdout.trim()).toBe("OK");
    }
    expect(emulator.admin.deviceCodes()).toHaveLength(codes + 1);
  });
});
