/**
 * Unmodified POP3 clients through the bridge to the emulator's Dovecot: Python's poplib (USER/PASS, and
 * AUTH PLAIN inline and with a continuation through `_shortcmd`) and curl (plain, STLS, implicit TLS),
 * each reading real mail and each failing cleanly with a wrong password.
 */
import { randomBytes } from "node:crypto";
import { curl, curlSpeaks } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor } from "../src/front-door.js";
import { startPop3FrontDoor } from "../src/pop3/pop3-front-door.js";
import {
  closeAll,
  deliver,
  dovecotMissing,
  frontDoorOptions,
  type RelayBridge,
  type RelayEnv,
  run,
  SUPPORT,
  startRelayBridge,
  startRelayEnv,
} from "./relay-helpers.js";

const PASSWORD = "Demo-Passw0rd!";

/** poplib as a script would use it; prints what it saw, exits 3 on a refused login. */
const POPLIB = String.raw`
import base64, os, poplib, ssl, sys
host, port, mode, how = "127.0.0.1", int(os.environ["PORT"]), os.environ["MODE"], os.environ["HOW"]
user, password, subject = os.environ["POP_USER"], os.environ["POP_PASSWORD"], os.environ["SUBJECT"]
ctx = ssl.create_default_context(cafile=os.environ["CA"])
if mode == "tls":
    P = poplib.POP3_SSL(host, port, context=ctx)
else:
    P = poplib.POP3(host, port)
    if mode == "starttls":
        P.stls(context=ctx)
print("CAPA", " ".join(sorted(P.capa().keys())))
plain = base64.b64encode(("\0" + user + "\0" + password).encode()).decode()
try:
    if how == "user":
        P.user(user)
        P.pass_(password)
    elif how == "plain-ir":
        P._shortcmd("AUTH PLAIN " + plain)
    else:
        print("CONT", P._shortcmd("AUTH PLAIN").decode())
        P._shortcmd(plain)
except poplib.error_proto as e:
    print("REFUSED", e)
    sys.exit(3)
count, size = P.stat()
found = 0
for i in range(count, 0, -1):
    if any(subject.encode() in line for line in P.retr(i)[1]):
        found += 1
print("FOUND", found)
print("UIDL", len(P.uidl()[1]) == count)
print("TOP", any(line.startswith(b"Subject:") for line in P.top(1, 0)[1]))
P.quit()
`;

describe.skipIf(dovecotMissing)("POP3 front door with unmodified clients", () => {
  let env: RelayEnv;
  const doors: Record<string, FrontDoor> = {};
  const portOf = (door: string) =>
    door === "upstreamStartTls"
      ? doors.upstreamStartTls!.address.port
      : bridge.port("pop3", door as "plain" | "starttls" | "tls");
  let bridge: RelayBridge;
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-pop3-clients-");
    // The whole bridge: config, passthrough credentials and lockout guard, one listener per security.
    bridge = await startRelayBridge(env);
    // Upstream over STARTTLS too (Dovecot's plain port), which startBridge does not configure.
    doors.upstreamStartTls = await startPop3FrontDoor(
      frontDoorOptions(env, "pop3", { security: "plain", upstreamSecurity: "starttls" }),
    );
  });
  afterAll(async () => {
    await bridge?.close();
    await closeAll(Object.values(doors));
    await env?.stop();
  });

  const poplib = (door: string, mode: string, how: string, password: string, subject: string) =>
    run("python3", ["-c", POPLIB], {
      env: {
        PORT: String(portOf(door)),
        MODE: mode,
        HOW: how,
        POP_USER: SUPPORT,
        POP_PASSWORD: password,
        SUBJECT: subject,
        CA: env.emulator.caPath,
      },
    });

  for (const [door, mode, how] of [
    ["plain", "plain", "user"],
    ["plain", "plain", "plain-ir"],
    ["starttls", "starttls", "user"],
    ["starttls", "starttls", "plain-continuation"],
    ["tls", "tls", "user"],
    ["tls", "tls", "plain-ir"],
    ["upstreamStartTls", "plain", "user"],
  ] as const) {
    it(`poplib ${how} over ${door}: RETR, UIDL and TOP of real mail`, async () => {
      const subject = `poplib ${door} ${how} ${randomBytes(4).toString("hex")}`;
      await deliver(env, SUPPORT, subject);
      const result = await poplib(door, mode, how, PASSWORD, subject);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^CAPA .*\bSASL\b/m);
      expect(result.stdout).toMatch(/^CAPA .*\bUSER\b/m);
      if (how === "plain-continuation") expect(result.stdout).toMatch(/^CONT \+/m);
      expect(result.stdout).toContain("FOUND 1");
      expect(result.stdout).toContain("UIDL True");
      expect(result.stdout).toContain("TOP True");
    });
  }

  it("poplib with a wrong password: -ERR [AUTH], exit status 3, for USER/PASS and AUTH PLAIN", async () => {
    for (const how of ["user", "plain-ir"]) {
      const result = await poplib("tls", "tls", how, "wrong-password-2", "x");
      expect(result.code).toBe(3);
      expect(result.stdout).toMatch(/REFUSED .*-ERR \[AUTH\]/);
    }
  });

  it("a STLS listener offers STLS and no USER/SASL before it, and refuses USER in plain text", async () => {
    const script = `
import os, poplib
P = poplib.POP3("127.0.0.1", int(os.environ["PORT"]))
print("CAPA", " ".join(sorted(P.capa().keys())))
try:
    P.user("support@contoso.com")
    print("ACCEPTED")
except poplib.error_proto as e:
    print("REFUSED", e)
`;
    const result = await run("python3", ["-c", script], {
      env: { PORT: String(portOf("starttls")) },
    });
    expect(result.stdout).toMatch(/^CAPA .*\bSTLS\b/m);
    expect(result.stdout).not.toMatch(/^CAPA .*\b(USER|SASL)\b/m);
    expect(result.stdout).toContain("REFUSED");
  });

  describe.skipIf(!curlSpeaks("pop3s"))("curl", () => {
    const curlPop3 = (url: string, password: string, extra = "") =>
      curl(
        [
          `url = "${url}"`,
          `user = "${SUPPORT}:${password}"`,
          `cacert = "${env.emulator.caPath}"`,
          "max-time = 20",
          "silent",
          "show-error",
          extra,
        ].join("\n"),
      );

    it("curl --ssl-reqd over STLS lists and retrieves a message", async () => {
      const subject = `curl stls ${randomBytes(4).toString("hex")}`;
      await deliver(env, SUPPORT, subject);
      const port = portOf("starttls");
      const list = await curlPop3(`pop3://127.0.0.1:${port}/`, PASSWORD, "ssl-reqd");
      expect(list.stderr).toBe("");
      const numbers = list.stdout
        .trim()
        .split(/\r?\n/)
        .map((l) => Number(l.split(" ")[0]));
      const last = Math.max(...numbers);
      const message = await curlPop3(`pop3://127.0.0.1:${port}/${last}`, PASSWORD, "ssl-reqd");
      expect(message.code).toBe(0);
      expect(message.stdout).toContain(`Subject: ${subject}`);
    });

    it("curl pop3s:// (implicit TLS) retrieves a message and fails with exit 67 on a wrong password", async () => {
      const port = portOf("tls");
      const list = await curlPop3(`pop3s://127.0.0.1:${port}/`, PASSWORD);
      expect(list.code).toBe(0);
      const message = await curlPop3(`pop3s://127.0.0.1:${port}/1`, PASSWORD);
      expect(message.code).toBe(0);
      expect(message.stdout).toMatch(/^Subject: /m);
      const wrong = await curlPop3(`pop3s://127.0.0.1:${port}/`, "not-the-password");
      expect(wrong.code).toBe(67); // CURLE_LOGIN_DENIED
    });

    it("curl pop3:// over plain text (loopback listener)", async () => {
      const list = await curlPop3(`pop3://127.0.0.1:${portOf("plain")}/`, PASSWORD);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^1 \d+/m);
    });
  });

  it("one session record per connection, with account, upstream and bytes; no secret in any log line", () => {
    // The bridge's one line per session (from the relay's SessionRecord).
    const sessions = bridge.lines.filter((l) => l.includes("session pop3 "));
    const ok = sessions.filter((l) => l.includes("result=ok") && l.includes("account=contoso "));
    expect(ok.length).toBeGreaterThanOrEqual(6);
    for (const line of ok) {
      expect(line).toMatch(/client=127\.0\.0\.1:\d+ .*upstream=127\.0\.0\.1:\d+ in=[1-9]\d* out=[1-9]\d* /);
    }
    expect(sessions.some((l) => l.includes("result=auth-failed"))).toBe(true);
    const all = [...env.logLines, ...bridge.lines].join("\n");
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain("wrong-password-2");
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
