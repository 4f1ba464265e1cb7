/**
 * Unmodified IMAP clients through the bridge to the emulator's Dovecot: Python's imaplib (LOGIN and
 * AUTHENTICATE PLAIN) and curl (SASL-IR), over each listener security, each reading real mail and each
 * failing cleanly with a wrong password.
 */
import { randomBytes } from "node:crypto";
import { curl, curlSpeaks } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FrontDoor } from "../src/front-door.js";
import { startImapFrontDoor } from "../src/imap/imap-front-door.js";
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

/** imaplib exactly as a script would use it; prints what it saw, exits 3 on a refused login. */
const IMAPLIB = String.raw`
import imaplib, os, ssl, sys
host, port, mode, how = "127.0.0.1", int(os.environ["PORT"]), os.environ["MODE"], os.environ["HOW"]
user, password, subject = os.environ["IMAP_USER"], os.environ["IMAP_PASSWORD"], os.environ["SUBJECT"]
ctx = ssl.create_default_context(cafile=os.environ["CA"])
if mode == "tls":
    M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
else:
    M = imaplib.IMAP4(host, port)
    if mode == "starttls":
        M.starttls(ssl_context=ctx)
print("CAPS", " ".join(M.capabilities))
try:
    if how == "login":
        M.login(user, password)
    else:
        M.authenticate("PLAIN", lambda _: ("\0" + user + "\0" + password).encode())
except imaplib.IMAP4.error as e:
    print("REFUSED", e)
    sys.exit(3)
typ, data = M.capability()
after = data[0].decode().split()
print("AFTER", " ".join(after))
typ, data = M.select("INBOX")
typ, data = M.search(None, "SUBJECT", '"' + subject + '"')
nums = data[0].split()
print("FOUND", len(nums))
typ, data = M.fetch(nums[-1], "(RFC822)")
print("BODY", data[0][1].decode(errors="replace").count(subject))
typ, data = M.create("Moved")
typ, data = M._simple_command("MOVE", nums[-1], "Moved") if "MOVE" in after else ("NO", [b""])
print("MOVE", typ)
M.logout()
`;

describe.skipIf(dovecotMissing)("IMAP front door with unmodified clients", () => {
  let env: RelayEnv;
  const doors: Record<string, FrontDoor> = {};
  const portOf = (door: string) =>
    door === "upstreamStartTls"
      ? doors.upstreamStartTls!.address.port
      : bridge.port("imap", door as "plain" | "starttls" | "tls");
  let bridge: RelayBridge;
  beforeAll(async () => {
    env = await startRelayEnv("m365-bridge-imap-clients-");
    // The whole bridge: config, passthrough credentials and lockout guard, one listener per security.
    bridge = await startRelayBridge(env);
    // Upstream over STARTTLS too (Dovecot's plain port), which startBridge does not configure.
    doors.upstreamStartTls = await startImapFrontDoor(
      frontDoorOptions(env, "imap", { security: "plain", upstreamSecurity: "starttls" }),
    );
  });
  afterAll(async () => {
    await bridge?.close();
    await closeAll(Object.values(doors));
    await env?.stop();
  });

  const imaplib = (door: string, mode: string, how: string, password: string, subject: string) =>
    run("python3", ["-c", IMAPLIB], {
      env: {
        PORT: String(portOf(door)),
        MODE: mode,
        HOW: how,
        IMAP_USER: SUPPORT,
        IMAP_PASSWORD: password,
        SUBJECT: subject,
        CA: env.emulator.caPath,
      },
    });

  for (const [door, mode] of [
    ["plain", "plain"],
    ["starttls", "starttls"],
    ["tls", "tls"],
    ["upstreamStartTls", "plain"],
  ] as const) {
    for (const how of ["login", "plain"]) {
      it(`imaplib ${how === "login" ? "LOGIN" : "AUTHENTICATE PLAIN"} over ${door}: reads and moves real mail`, async () => {
        const subject = `imaplib ${door} ${how} ${randomBytes(4).toString("hex")}`;
        await deliver(env, SUPPORT, subject);
        const result = await imaplib(door, mode, how, PASSWORD, subject);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        // Before login the bridge's own list; after it the server's (the emulator's is Exchange Online's).
        const caps = /^CAPS (.*)$/m.exec(result.stdout)![1]!.split(" ");
        expect(caps).toContain("AUTH=PLAIN");
        expect(caps).not.toContain("LOGINDISABLED");
        expect(result.stdout).toMatch(/^AFTER .*\bIDLE\b/m);
        expect(result.stdout).toMatch(/^AFTER .*\bMOVE\b/m);
        expect(result.stdout).toMatch(/^AFTER .*\bNAMESPACE\b/m);
        expect(result.stdout).toMatch(/^AFTER .*\bUIDPLUS\b/m);
        expect(result.stdout).toContain("FOUND 1");
        expect(result.stdout).toContain("BODY 1");
        expect(result.stdout).toContain("MOVE OK");
      });
    }
  }

  it("imaplib with a wrong password: NO [AUTHENTICATIONFAILED], exit status 3, for LOGIN and PLAIN", async () => {
    for (const how of ["login", "plain"]) {
      const result = await imaplib("tls", "tls", how, "wrong-password-1", "x");
      expect(result.code).toBe(3);
      expect(result.stdout).toMatch(/REFUSED .*AUTHENTICATIONFAILED/);
    }
    const failed = bridge.lines.filter((l) => /session imap .*result=auth-failed/.test(l));
    expect(failed.length).toBeGreaterThanOrEqual(2);
  });

  it("a STARTTLS listener offers no password login before STARTTLS (LOGINDISABLED, no AUTH=PLAIN)", async () => {
    const script = `
import imaplib, os
M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
print("CAPS", " ".join(M.capabilities))
try:
    M.login("support@contoso.com", "Demo-Passw0rd!")
    print("LOGGED IN")
except imaplib.IMAP4.error as e:
    print("REFUSED", e)
`;
    const result = await run("python3", ["-c", script], {
      env: { PORT: String(portOf("starttls")) },
    });
    expect(result.stdout).toMatch(/^CAPS .*STARTTLS/m);
    expect(result.stdout).toMatch(/^CAPS .*LOGINDISABLED/m);
    expect(result.stdout).not.toMatch(/^CAPS .*AUTH=PLAIN/m);
    expect(result.stdout).not.toContain("LOGGED IN");
  });

  describe.skipIf(!curlSpeaks("imaps"))("curl", () => {
    const curlImap = (url: string, password: string, extra = "") =>
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

    it("curl --ssl-reqd over STARTTLS (AUTHENTICATE PLAIN with SASL-IR) fetches a message", async () => {
      const subject = `curl starttls ${randomBytes(4).toString("hex")}`;
      await deliver(env, SUPPORT, subject);
      const port = portOf("starttls");
      const search = await curlImap(
        `imap://127.0.0.1:${port}/INBOX`,
        PASSWORD,
        `ssl-reqd\nrequest = "SEARCH SUBJECT \\"${subject}\\""`,
      );
      expect(search.stderr).toBe("");
      const uid = /\* SEARCH (\d+)/.exec(search.stdout)?.[1];
      expect(uid).toBeDefined();
      const message = await curlImap(`imap://127.0.0.1:${port}/INBOX;MAILINDEX=${uid}`, PASSWORD, "ssl-reqd");
      expect(message.code).toBe(0);
      expect(message.stdout).toContain(`Subject: ${subject}`);
    });

    it("curl imaps:// (implicit TLS) fetches a message and fails with exit 67 on a wrong password", async () => {
      const subject = `curl imaps ${randomBytes(4).toString("hex")}`;
      await deliver(env, SUPPORT, subject);
      const port = portOf("tls");
      const search = await curlImap(
        `imaps://127.0.0.1:${port}/INBOX`,
        PASSWORD,
        `request = "SEARCH SUBJECT \\"${subject}\\""`,
      );
      const uid = /\* SEARCH (\d+)/.exec(search.stdout)?.[1];
      const message = await curlImap(`imaps://127.0.0.1:${port}/INBOX;MAILINDEX=${uid}`, PASSWORD);
      expect(message.code).toBe(0);
      expect(message.stdout).toContain(`Subject: ${subject}`);
      const wrong = await curlImap(`imaps://127.0.0.1:${port}/INBOX`, "not-the-password");
      expect(wrong.code).toBe(67); // CURLE_LOGIN_DENIED
    });

    it("curl over plain text (loopback listener) with LOGIN-style user and password", async () => {
      const port = portOf("plain");
      const list = await curlImap(`imap://127.0.0.1:${port}/`, PASSWORD);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/LIST .*INBOX/i);
    });
  });

  it("no password or token in any log line", () => {
    const all = [...env.logLines, ...bridge.lines].join("\n");
    expect(bridge.lines.some((l) => /session imap .*result=ok/.test(l))).toBe(true);
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain("wrong-password-1");
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
