/** Debian's fetchmail over POP3 through the bridge: implicit TLS, STLS and plain; a wrong password fails with status 3. */

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor } from "../src/front-door.js";
import { startPop3FrontDoor } from "../src/pop3/pop3-front-door.js";
import {
  closeAll,
  deliver,
  dovecotMissing,
  frontDoorOptions,
  type RelayEnv,
  runFetchmail,
  startRelayEnv,
} from "./relay-helpers.js";

const hasFetchmail = spawnSync("fetchmail", ["--version"]).status !== null;
const USER = "alice@contoso.com";
const PASSWORD = "Demo-Passw0rd!";

describe.skipIf(dovecotMissing || !hasFetchmail)("fetchmail over POP3 through the bridge", () => {
  let env: RelayEnv;
  const doors: Record<string, FrontDoor> = {};
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-pop3-fetchmail-");
    for (const security of ["plain", "starttls", "tls"] as const) {
      doors[security] = await startPop3FrontDoor(frontDoorOptions(env, "pop3", { security }));
    }
  });
  afterAll(async () => {
    await closeAll(Object.values(doors));
    await env?.stop();
  });

  for (const mode of ["tls", "starttls", "plain"] as const) {
    it(`fetches real messages over ${mode}`, async () => {
      const tag = randomBytes(4).toString("hex");
      const subjects = [`fm pop3 ${mode} ${tag} 1`, `fm imap ${mode} ${tag} 2`];
      for (const subject of subjects) await deliver(env, USER, subject, `body of ${subject}`);
      const result = await runFetchmail({
        protocol: "POP3",
        port: doors[mode]!.address.port,
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
      port: doors.tls!.address.port,
      mode: "tls",
      user: USER,
      password: "wrong-password-4",
      ca: env.emulator.caPath,
    });
    expect(result.code, result.stderr + result.stdout).toBe(3);
    expect(result.mailbox).toBe("");
    expect(env.logLines.join("\n")).not.toContain("wrong-password-4");
  });
});
