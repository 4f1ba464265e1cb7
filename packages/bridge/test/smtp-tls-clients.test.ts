import { randomBytes } from "node:crypto";
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestEmulator } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bridge } from "../src/index.js";
import {
  DEMO_PASSWORD,
  hasTool,
  mailbox,
  pythonSmtp,
  run,
  smtpDialog,
  smtpPort,
  startSmtpEmulator,
  startTestBridge,
  textMessage,
  waitFor,
} from "./bridge-env.js";

let emulator: TestEmulator;
let bridge: Bridge;
let certPath: string;

beforeAll(async () => {
  emulator = await startSmtpEmulator();
  bridge = await startTestBridge(emulator, {
    listeners: [
      { protocol: "smtp", host: "127.0.0.1", port: 0, security: "starttls" },
      { protocol: "smtp", host: "127.0.0.1", port: 0, security: "tls" },
    ],
    accounts: [{ credentials: { mode: "passthrough", username: "support@contoso.com" } }],
  });
  // Generated on first start and kept: this is the file users are told to trust.
  certPath = join(emulator.dataDir, "bridge", "tls", "bridge-cert.pem");
});

afterAll(async () => {
  await bridge?.close({ drainMs: 0 });
  await emulator?.stop();
});

const subject = (name: string) => `${name} ${randomBytes(4).toString("hex")}`;
const arrived = (s: string) =>
  waitFor(async () => (await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s), 30_000);

describe("STARTTLS and implicit TLS", () => {
  it("offers AUTH only after STARTTLS on a starttls listener", async () => {
    const session = await smtpDialog(smtpPort(bridge, 0));
    const ehlo = await session.command("EHLO test");
    expect(ehlo).toContain("STARTTLS");
    expect(ehlo).not.toMatch(/AUTH/);
    expect(
      await session.command(`AUTH PLAIN ${Buffer.from("\0support@contoso.com\0x").toString("base64")}`),
    ).toMatch(/^5\d\d/);
    session.close();
  });

  it("Python smtplib over implicit TLS", async () => {
    const s = subject("implicit tls");
    const result = await pythonSmtp({
      port: smtpPort(bridge, 1),
      tls: "implicit",
      mechanism: "LOGIN",
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      from: "support@contoso.com",
      to: ["alice@contoso.com"],
      message: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
    });
    expect(result.stdout.trim()).toBe("OK");
    await arrived(s);
  });
});

describe.runIf(hasTool("swaks"))("swaks (Debian) over STARTTLS", () => {
  // swaks takes options from SWAKS_OPT_* variables: the password never shows on a command line.
  const swaks = (mechanism: string, password: string, s: string) =>
    run(
      "swaks",
      [
        "--server",
        `127.0.0.1:${smtpPort(bridge, 0)}`,
        "--tls",
        "--auth",
        mechanism,
        "--from",
        "support@contoso.com",
        "--to",
        "alice@contoso.com",
        "--header",
        `Subject: ${s}`,
        "--body",
        "from swaks",
        "--hide-all",
      ],
      {
        env: { SWAKS_OPT_auth_user: "support@contoso.com", SWAKS_OPT_auth_password: password },
        timeoutMs: 60_000,
      },
    );

  for (const mechanism of ["LOGIN", "PLAIN"]) {
    it(`AUTH ${mechanism}: delivered`, async () => {
      const s = subject(`swaks ${mechanism}`);
      const result = await swaks(mechanism, DEMO_PASSWORD, s);
      expect(result.code).toBe(0);
      await arrived(s);
    });
  }

  it("wrong password: swaks exits 28 (AUTH failed)", async () => {
    const result = await swaks("LOGIN", "Wrong-swaks-1", subject("never"));
    expect(result.code).toBe(28);
  });
});

describe.runIf(hasTool("msmtp"))("msmtp (Debian), trusting the generated certificate", () => {
  const msmtp = async (options: {
    tls: "starttls" | "implicit";
    auth: string;
    password: string;
    s: string;
  }) => {
    const dir = await mkdtemp(join(tmpdir(), "msmtp-"));
    const config = join(dir, "msmtprc");
    await writeFile(
      config,
      [
        "account bridge",
        "host 127.0.0.1",
        `port ${smtpPort(bridge, options.tls === "starttls" ? 0 : 1)}`,
        "tls on",
        `tls_starttls ${options.tls === "starttls" ? "on" : "off"}`,
        // The bridge's own certificate as the trust anchor: the check stays on.
        `tls_trust_file ${certPath}`,
        `auth ${options.auth}`,
        "user support@contoso.com",
        `password ${options.password}`,
        "from support@contoso.com",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    try {
      return await run("msmtp", ["-C", config, "-a", "bridge", "alice@contoso.com"], {
        input: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: options.s }),
        timeoutMs: 60_000,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it("STARTTLS, AUTH PLAIN, certificate verified: delivered", async () => {
    const s = subject("msmtp starttls");
    const result = await msmtp({ tls: "starttls", auth: "plain", password: DEMO_PASSWORD, s });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    await arrived(s);
  });

  it("implicit TLS, AUTH LOGIN: delivered", async () => {
    const s = subject("msmtp tls");
    const result = await msmtp({ tls: "implicit", auth: "login", password: DEMO_PASSWORD, s });
    expect(result.code).toBe(0);
    await arrived(s);
  });

  it("wrong password fails cleanly with the server's 535", async () => {
    const result = await msmtp({ tls: "starttls", auth: "plain", password: "Wrong-msmtp-1", s: "never" });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/535 5\.7\.3 Authentication unsuccessful/);
  });
});

describe.runIf(hasTool("postfix"))(
  "Postfix (Debian) relaying through the bridge as its relayhost with SASL",
  () => {
    let dir: string;
    const postfix = (...args: string[]) => run("postfix", ["-c", dir, ...args], { timeoutMs: 60_000 });

    beforeAll(async () => {
      // A private instance: own config, queue and log; no inet listener at all (no port 25).
      dir = await mkdtemp(join(tmpdir(), "bridge-postfix-"));
      await run("chmod", ["755", dir]);
      await mkdir(join(dir, "queue"));
      await mkdir(join(dir, "data"));
      const { stdout } = await run("id", ["-u", "postfix"]);
      await chown(join(dir, "data"), Number(stdout.trim()), 0);
      await writeFile(
        join(dir, "main.cf"),
        [
          "compatibility_level = 3.6",
          `queue_directory = ${dir}/queue`,
          `data_directory = ${dir}/data`,
          "mail_owner = postfix",
          "setgid_group = postdrop",
          "inet_interfaces = 127.0.0.1",
          "inet_protocols = ipv4",
          "mydestination =",
          "myhostname = bridge-test.localdomain",
          "alias_maps =",
          "alias_database =",
          `maillog_file = ${dir}/maillog`,
          `maillog_file_prefixes = ${dir}`,
          `relayhost = [127.0.0.1]:${smtpPort(bridge, 0)}`,
          "smtp_sasl_auth_enable = yes",
          `smtp_sasl_password_maps = texthash:${dir}/sasl_passwd`,
          "smtp_sasl_security_options = noanonymous",
          "smtp_tls_security_level = encrypt",
          // The README's recipe for system mail (root@, cron, alerts): every sender becomes the account.
          `sender_canonical_maps = regexp:${dir}/sender_canonical`,
          // Retry deferred mail quickly in the test.
          "queue_run_delay = 2s",
          "minimal_backoff_time = 2s",
          "maximal_backoff_time = 4s",
          "",
        ].join("\n"),
      );
      const services = [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
      ];
      await writeFile(join(dir, "master.cf"), `${services.join("\n")}\n`);
      await writeFile(join(dir, "sender_canonical"), "/.+/ support@contoso.com\n");
      await writeFile(
        join(dir, "sasl_passwd"),
        `[127.0.0.1]:${smtpPort(bridge, 0)} support@contoso.com:${DEMO_PASSWORD}\n`,
        { mode: 0o600 },
      );
      const started = await postfix("start");
      expect(started.code).toBe(0);
    }, 120_000);

    afterAll(async () => {
      if (dir) {
        await postfix("stop");
        await rm(dir, { recursive: true, force: true });
      }
    });

    const sendmail = (s: string) =>
      run("sendmail", ["-C", dir, "-f", "support@contoso.com", "alice@contoso.com"], {
        input: textMessage({ from: "support@contoso.com", to: "alice@contoso.com", subject: s }),
      });

    it("mail handed to Postfix reaches the mailbox through the bridge and Graph", async () => {
      const s = subject("postfix");
      expect((await sendmail(s)).code).toBe(0);
      await arrived(s);
      const log = await readFile(join(dir, "maillog"), "utf8");
      expect(log).toMatch(/relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 2\.6\.0/);
    }, 60_000);

    it("system mail from root@ goes out as the account (sender_canonical_maps), instead of the bridge's 550 5.7.60", async () => {
      const s = subject("postfix root");
      const message = [
        "From: Cron Daemon <root@bridge-test.localdomain>",
        "To: alice@contoso.com",
        `Subject: ${s}`,
        "",
        "Cron <root@bridge-test> /usr/local/bin/backup: done",
        "",
      ].join("\r\n");
      const queued = await run(
        "sendmail",
        ["-C", dir, "-f", "root@bridge-test.localdomain", "alice@contoso.com"],
        {
          input: message,
        },
      );
      expect(queued.code).toBe(0);
      const got = await arrived(s);
      expect(got.from?.value[0]).toMatchObject({ address: "support@contoso.com", name: "Cron Daemon" });
    }, 60_000);

    it("with a wrong SASL password Postfix keeps the mail queued and logs the bridge's 535", async () => {
      await writeFile(
        join(dir, "sasl_passwd"),
        `[127.0.0.1]:${smtpPort(bridge, 0)} support@contoso.com:Wrong-postfix-1\n`,
        { mode: 0o600 },
      );
      await postfix("reload");
      const s = subject("postfix wrong");
      expect((await sendmail(s)).code).toBe(0);
      const log = await waitFor(async () => {
        const text = await readFile(join(dir, "maillog"), "utf8");
        return /SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: 535 5\.7\.3/.test(text)
          ? text
          : undefined;
      }, 30_000);
      expect(log).toMatch(/status=deferred/);
      expect((await mailbox(emulator, "alice@contoso.com")).find((m) => m.subject === s)).toBeUndefined();
    }, 60_000);
  },
);
