/** Debian's fetchmail over IMAP through the bridge: implicit TLS, STARTTLS and plain; a wrong password fails with status 3. */

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor } from "../src/front-door.js";
import { startImapFrontDoor } from "../src/imap/imap-front-door.js";
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

describe.skipIf(dovecotMissing || !hasFetchmail)("fetchmail over IMAP through the bridge", () => {
  let env: RelayEnv;
  const doors: Record<string, FrontDoor> = {};
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-fetchmail-");
    for (const security of ["plain", "starttls", "tls"] as const) {
      doors[security] = await startImapFrontDoor(frontDoorOptions(env, "imap", { security }));
    }
  });
  afterAll(async () => {
    await closeAll(Object.values(doors));
    await env?.stop();
  });

  for (const mode of ["tls", "starttls", "plain"] as const) {
    it(`fetches real messages over ${mode}`, async () => {
      const tag = randomBytes(4).toString("hex");
      const subjects = [`fm imap ${mode} ${tag} 1`, `fm imap ${mode} ${tag} 2`];
      for (const subject of subjects) await deliver(env, USER, subject, `body of ${subject}`);
      const result = await runFetchmail({
        protocol: "IMAP",
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
      protocol: "IMAP",
      port: doors.tls!.address.port,
      mode: "tls",
      user: USER,
      password: "wrong-password-3",
      ca: env.emulator.caPath,
    });
    expect(result.code, result.stderr + result.stdout).toBe(3);
    expect(result.mailbox).toBe("");
    expect(env.logLines.join("\n")).not.toContain("wrong-password-3");
  });
});
