/** Debian's fetchmail over IMAP and POP3 through the bridge: implicit TLS, STARTTLS/STLS and plain; a wrong password fails with status 3. */

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasTool } from "./bridge-env.js";
import {
  deliver,
  dovecotMissing,
  type RelayBridge,
  type RelayEnv,
  runFetchmail,
  startRelayBridge,
  startRelayEnv,
} from "./relay-helpers.js";

const hasFetchmail = hasTool("fetchmail");
const USER = "alice@contoso.com";
const PASSWORD = "Demo-Passw0rd!";

describe.skipIf(dovecotMissing || !hasFetchmail).each([
  { protocol: "imap", wrongPassword: "wrong-password-3" },
  { protocol: "pop3", wrongPassword: "wrong-password-4" },
] as const)("fetchmail over $protocol through the bridge", ({ protocol, wrongPassword }) => {
  const fetchmailProtocol = protocol === "imap" ? "IMAP" : "POP3";
  let env: RelayEnv;
  let bridge: RelayBridge;
  beforeAll(async () => {
    env = await startRelayEnv(`m365-bridge-${protocol}-fetchmail-`);
    bridge = await startRelayBridge(env);
  });
  afterAll(async () => {
    await bridge?.close();
    await env?.stop();
  });

  for (const mode of ["tls", "starttls", "plain"] as const) {
    it(`fetches real messages over ${mode}`, async () => {
      const tag = randomBytes(4).toString("hex");
      const subjects = [`fm ${protocol} ${mode} ${tag} 1`, `fm ${protocol} ${mode} ${tag} 2`];
      for (const subject of subjects) await deliver(env, USER, subject, `body of ${subject}`);
      const result = await runFetchmail({
        protocol: fetchmailProtocol,
        port: bridge.port(protocol, mode),
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
      protocol: fetchmailProtocol,
      port: bridge.port(protocol, "tls"),
      mode: "tls",
      user: USER,
      password: wrongPassword,
      ca: env.emulator.caPath,
    });
    expect(result.code, result.stderr + result.stdout).toBe(3);
    expect(result.mailbox).toBe("");
    expect([...env.logLines, ...bridge.lines].join("\n")).not.toContain(wrongPassword);
  });
});
