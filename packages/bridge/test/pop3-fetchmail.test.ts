/** Debian's fetchmail over POP3 through the bridge: implicit TLS, STLS and plain; a wrong password fails with status 3. */

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deliver,
  dovecotMissing,
  type RelayBridge,
  type RelayEnv,
  runFetchmail,
  startRelayBridge,
  startRelayEnv,
} from "./relay-helpers.js";

const hasFetchmail = spawnSync("fetchmail", ["--version"]).status !== null;
const USER = "alice@contoso.com";
const PASSWORD = "Demo-Passw0rd!";

describe.skipIf(dovecotMissing || !hasFetchmail)("fetchmail over POP3 through the bridge", () => {
  let env: RelayEnv;
  let bridge: RelayBridge;
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-pop3-fetchmail-");
    bridge = await startRelayBridge(env);
  });
  afterAll(async () => {
    await bridge?.close();
    await env?.stop();
  });

  for (const mode of ["tls", "starttls", "plain"] as const) {
    it(`fetches real messages over ${mode}`, async () => {
      const tag = randomBytes(4).toString("hex");
      const subjects = [`fm pop3 ${mode} ${tag} 1`, `fm pop3 ${mode} ${tag} 2`];
      for (const subject of subjects) await deliver(env, USER, subject, `body of ${subject}`);
      const result = await runFetchmail({
        protocol: "POP3",
        port: bridge.port("pop3", mode),
        mode,
        user: USER,
        password: PASSWORD,
        ca: env.emulator.caPath,
      });
      expect(result.code, result.stderr + result.stdout).toBe(0);
      for (const subject of subjects) {
        expect(result.mailbox).toContain(`Subject: ${subject}`);
        expect(result.mailbox).toContain(`body of ${subject}`);
      }
    });
  }

  it("a wrong password ends fetchmail with status 3 (authentication failed)", async () => {
    const result = await runFetchmail({
      protocol: "POP3",
      port: bridge.port("pop3", "tls"),
      mode: "tls",
      user: USER,
      password: "wrong-password-4",
      ca: env.emulator.caPath,
    });
    expect(result.code, result.stderr + result.stdout).toBe(3);
    expect(result.mailbox).toBe("");
    expect([...env.logLines, ...bridge.lines].join("\n")).not.toContain("wrong-password-4");
  });
});
