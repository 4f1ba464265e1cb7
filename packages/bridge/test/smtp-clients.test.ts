import { randomBytes } from "node:crypto";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  collectingLogger,
  DEMO_PASSWORD,
  mailbox,
  messageWithAttachment,
  pythonSmtp,
  run,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
  waitFor,
} from "./bridge-env.js";

let emulator: TestEmulator;
let bridge: Bridge;
const logger = collectingLogger();

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  bridge = await startTestBridge(
    emulator,
    {
      listeners: [{ protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" }],
      accounts: [
        { credentials: { mode: "passthrough", username: "support@contoso.com" } },
        // SMTP AUTH is off for this mailbox: Graph delivery still works.
        { credentials: { mode: "passthrough", username: "nosmtp@contoso.com" } },
        { credentials: { mode: "passthrough", username: "alice@contoso.com" }, delivery: "smtp" },
      ],
    },
    logger,
  );
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

const subject = (name: string) => `${name} ${randomBytes(4).toString("hex")}`;

describe("Python smtplib through the bridge", () => {
  for (const mechanism of ["PLAIN", "LOGIN"] as const) {
    it(`AUTH ${mechanism}: the message reaches the recipient through Graph`, async () => {
      const s = subject(`smtplib ${mechanism}`);
      const result = await pythonSmtp({
        port: smtpPort(bridge),
        mechanism,
        username: "support@contoso.com",
        password: DEMO_PASSWORD,
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
      });
      expect(result.stdout.trim()).toBe("OK");
      const got = await waitFor(async () =>
        (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s),
      );
      expect(got.from?.value[0]?.address).toBe("support@contoso.com");
    });

    it(`AUTH ${mechanism} with a wrong password fails cleanly with 535 5.7.3`, async () => {
      const result = await pythonSmtp({
        port: smtpPort(bridge),
        mechanism,
        username: "support@contoso.com",
        password: `wrong-${mechanism}-password`,
        from: "support@contoso.com",
        to: ["alice@contoso.com"],
        message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: "never" }),
      });
      expect(result.stdout.trim()).toMatch(/^ERR 535 5\.7\.3 Authentication unsuccessful/);
    });
  }

  it("delivers envelope-only (Bcc) recipients, who do not see a Bcc header", async () => {
    const s = subject("bcc");
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      from: "support@contoso.com",
      to: ["alice@contoso.com", "noimap@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    const hidden = await waitFor(async () =>
      (await mailbox(emulator, "noimap@contoso.com")).find((m) => m.subject === s),
    );
    expect(hidden.raw.toString("latin1")).not.toMatch(/^bcc:/im);
    const visible = await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s),
    );
    expect(visible.raw.toString("latin1")).not.toMatch(/^bcc:/im);
  });

  it("refuses a sender the account may not send as with 550 5.7.60", async () => {
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      from: "ceo@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "ceo@contoso.com", to: "alice@contoso.com", subject: "spoof" }),
    });
    expect(result.stdout.trim()).toBe(
      "ERR 550 5.7.60 SMTP; Client does not have permissions to send as this sender",
    );
  });

  it("accepts a null sender (MAIL FROM:<>, a bounce an MTA passes on) and sends it as the mailbox, over Graph and SMTP", async () => {
    for (const account of ["support@contoso.com", "alice@contoso.com"]) {
      const s = subject("null sender");
      const result = await pythonSmtp({
        port: smtpPort(bridge),
        username: account,
        password: DEMO_PASSWORD,
        from: "",
        to: ["noimap@contoso.com"],
        message: textMessage({ from: account, to: "noimap@contoso.com", subject: s }),
      });
      expect(result.stdout.trim(), account).toBe("OK");
      await waitFor(async () => (await mailbox(emulator, "noimap@contoso.com")).find((m) => m.subject === s));
    }
  });

  it("AUTH PLAIN with an authorization identity other than the login is refused (535 5.7.8); the same name in another case is fine", async () => {
    const script = String.raw`
import base64, os, smtplib
for authzid in ["alice@contoso.com", "Support@Contoso.com"]:
    s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]), timeout=30)
    s.ehlo()
    token = base64.b64encode(("%s\0support@contoso.com\0%s" % (authzid, os.environ["PW"])).encode()).decode()
    code, text = s.docmd("AUTH", "PLAIN " + token)
    print(code, text.decode())
    s.quit()
`;
    const result = await run("python3", ["-c", script], {
      env: { PORT: String(smtpPort(bridge)), PW: DEMO_PASSWORD },
    });
    const [refused, accepted] = result.stdout.trim().split("\n");
    expect(refused).toMatch(/^535 5\.7\.8 .*authorization identity/);
    expect(accepted).toMatch(/^235 /);
  });

  it("is not an open relay: without AUTH, MAIL FROM is refused with 530", async () => {
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      from: "support@contoso.com",
      to: ["someone@example.org"],
      message: textMessage({ from: "support@contoso.com", to: "someone@example.org", subject: "relay?" }),
    });
    expect(result.stdout.trim()).toMatch(/^ERR 530 5\.7\.57/);
  });

  it("with SMTP AUTH disabled for the mailbox, mail still arrives through Graph: Bcc, byte-identical attachment, Sent Items copy", async () => {
    const s = subject("nosmtp");
    const attachment = randomBytes(200_000);
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      mechanism: "LOGIN",
      username: "nosmtp@contoso.com",
      password: DEMO_PASSWORD,
      from: "nosmtp@contoso.com",
      to: ["alice@contoso.com", "noimap@contoso.com"],
      message: messageWithAttachment({
        from: "nosmtp@contoso.com",
        to: "alice@contoso.com",
        subject: s,
        attachment,
        filename: "scan.pdf",
      }),
    });
    expect(result.stdout.trim()).toBe("OK");
    const got = await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s),
    );
    expect(Buffer.compare(got.attachments[0]!.content, attachment)).toBe(0);
    await waitFor(async () => (await mailbox(emulator, "noimap@contoso.com")).find((m) => m.subject === s));
    const sent = await waitFor(async () =>
      (await mailbox(emulator, "nosmtp@contoso.com", "sentitems")).find((m) => m.subject === s),
    );
    expect(Buffer.compare(sent.attachments[0]!.content, attachment)).toBe(0);
  });

  it("a message over Graph's MIME limit goes through the upload path, attachment byte-identical", async () => {
    const s = subject("large");
    const attachment = randomBytes(4 * 1024 * 1024 + 123);
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: messageWithAttachment({
        from: "support@contoso.com",
        to: "alice@contoso.com",
        subject: s,
        attachment,
        filename: "big.bin",
      }),
    });
    expect(result.stdout.trim()).toBe("OK");
    const got = await waitFor(async () =>
      (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s),
    );
    expect(got.attachments[0]!.content.length).toBe(attachment.length);
    expect(Buffer.compare(got.attachments[0]!.content, attachment)).toBe(0);
  });

  it('delivery "smtp": the bridge submits over SMTP XOAUTH2 with the envelope', async () => {
    const s = subject("smtp route");
    const result = await pythonSmtp({
      port: smtpPort(bridge),
      username: "alice@contoso.com",
      password: DEMO_PASSWORD,
      from: "alice@contoso.com",
      to: ["support@contoso.com", "noimap@contoso.com"],
      message: textMessage({ from: "alice@contoso.com", to: "support@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    await waitFor(async () => (await mailbox(emulator, "support@contoso.com")).find((m) => m.subject === s));
    await waitFor(async () => (await mailbox(emulator, "noimap@contoso.com")).find((m) => m.subject === s));
    expect(emulator.admin.counts()["smtp.messages:alice@contoso.com"]).toBeGreaterThanOrEqual(1);
  });
});

describe("curl through the bridge", () => {
  const curlConfig = (password: string, s: string) =>
    [
      `url = "smtp://127.0.0.1:${smtpPort(bridge)}"`,
      `user = "support@contoso.com:${password}"`,
      'mail-from = "support@contoso.com"',
      'mail-rcpt = "alice@contoso.com"',
      "upload-file = -",
      "silent",
      "show-error",
    ].join("\n") + `\n# ${s}\n`;

  it("sends with --user (AUTH PLAIN) and the mail arrives", async () => {
    const s = subject("curl");
    // curl reads its options with -K from a file descriptor, the message from stdin via a second config line.
    const message = textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s });
    const result = await run("bash", ["-c", `curl -K /dev/fd/3 3<<<"$CURL_CONFIG"`], {
      env: { CURL_CONFIG: curlConfig(DEMO_PASSWORD, s) },
      input: message,
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    await waitFor(async () => (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s));
  });

  it("fails cleanly with a wrong password (curl exit 67, login denied)", async () => {
    const result = await run("bash", ["-c", `curl -K /dev/fd/3 3<<<"$CURL_CONFIG"`], {
      env: { CURL_CONFIG: curlConfig("not-the-password", "x") },
      input: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: "never" }),
    });
    expect(result.code).toBe(67);
    expect(result.stderr).toMatch(/Login denied/i);
  });
});

describe("logs", () => {
  it("no log line holds a password or a token", () => {
    const all = logger.lines.join("\n");
    expect(logger.lines.length).toBeGreaterThan(0);
    expect(all).not.toContain(DEMO_PASSWORD);
    expect(all).not.toContain("wrong-PLAIN-password");
    expect(all).not.toContain("not-the-password");
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(all).toMatch(
      /session smtp client=127\.0\.0\.1:\d+ account=support@contoso\.com upstream=graph in=\d+ .* result=ok/,
    );
    expect(all).toMatch(/session smtp client=127\.0\.0\.1:\d+ account=alice@contoso\.com upstream=smtp /);
  });
});
