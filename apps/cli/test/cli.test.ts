import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DEMO_PASSWORD } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BIN,
  baseEnv,
  expectNoSecrets,
  HAS_DOVECOT,
  parseJson,
  runCli,
  SUPPORT,
  spawnCli,
  startTestEmulator,
  type TestEmulator,
  until,
} from "./helpers.js";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  await emu?.stop();
});

const cli = (args: string[], env: Record<string, string | undefined> = emu.env(), input?: string) =>
  runCli(args, { env, cwd: emu.home, ...(input !== undefined ? { input } : {}) });

const unique = (what: string) => `${what} ${randomBytes(4).toString("hex")}`;

describe("usage and configuration errors (exit 2)", () => {
  it("--help lists every command and the exit codes; no command is a usage error", async () => {
    const help = await cli(["--help"]);
    expect(help.code, help.stderr + help.stdout).toBe(0);
    for (const name of [
      "doctor",
      "token",
      "send",
      "folders",
      "list",
      "read",
      "watch",
      "calendar",
      "emulator",
      "demo",
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    }
    expect(help.stdout).toContain("3 sign-in or permission refused");
    const none = await cli([]);
    expect(none.code, none.stderr + none.stdout).toBe(2);
    expect(none.stderr).toContain("Usage: m365-mail <command>");
  });

  it("an unknown command, an unknown flag and a bad --via exit 2 with a CONFIG_INVALID error", async () => {
    expect((await cli(["frobnicate"])).code).toBe(2);
    const flag = await cli(["list", "--bogus"]);
    expect(flag.code, flag.stderr + flag.stdout).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--bogus'");
    const via = await cli(["list", "--via", "ews", "--json"]);
    expect(via.code, via.stderr + via.stdout).toBe(2);
    expect(parseJson(via)).toMatchObject({
      ok: false,
      error: { code: "CONFIG_INVALID", source: "cli", hint: "Run `m365-mail list --help`." },
    });
  });

  it("missing tenant, client and user: exit 2 naming the flags and variables to set", async () => {
    const result = await cli(["doctor", "--json"], baseEnv(emu.home));
    expect(result.code, result.stderr + result.stdout).toBe(2);
    const { error } = parseJson(result);
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.hint).toContain("M365_TENANT_ID");
    expect(error.hint).toContain("M365_CLIENT_ID");
    expect(error.hint).toContain("M365_USERNAME");
  });

  it("no password and no terminal: exit 2 instead of hanging on a prompt", async () => {
    const result = await cli(["token"], { ...emu.env(), M365_PASSWORD: undefined });
    expect(result.code, result.stderr + result.stdout).toBe(2);
    expect(result.stderr).toContain("no password for support@contoso.com");
    expect(result.stderr).toContain("M365_PASSWORD_FILE");
  });
});

describe("sign-in, tokens and secrets", () => {
  it("token shows the claims of both tokens, never a token (--json shape)", async () => {
    const result = await cli(["token", "--json"]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expectNoSecrets(result);
    const { ok, tokens } = parseJson(result);
    expect(ok).toBe(true);
    expect(tokens.map((t: { resource: string }) => t.resource)).toEqual(["graph", "outlook"]);
    expect(tokens[0]).toMatchObject({
      audience: "https://graph.microsoft.com",
      user: SUPPORT,
      tenantId: emu.emulator.tenantId,
      appId: emu.emulator.clientId,
      scopes: expect.arrayContaining(["User.Read", "Mail.Send"]),
    });
    expect(tokens[0]).not.toHaveProperty("token");
    expect(tokens[1].scopes).toEqual(expect.arrayContaining(["SMTP.Send", "IMAP.AccessAsUser.All"]));
  });

  it("token --raw prints exactly one token, for the resource asked", async () => {
    const result = await cli(["token", "--raw", "--resource", "outlook"]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const claims = JSON.parse(Buffer.from(lines[0]!.split(".")[1]!, "base64url").toString("utf8"));
    expect(claims.aud).toBe("https://outlook.office.com");
    expect(result.stderr).not.toMatch(/eyJ/);
    const json = parseJson(await cli(["token", "--raw", "--resource", "graph", "--json"]));
    expect(json.tokens[0].token).toMatch(/^eyJ/);
  });

  it("a wrong password exits 3 (AUTH_FAILED) and never echoes the password", async () => {
    const wrong = "Wrong-Passw0rd-42";
    const result = await cli(["token", "--json"], { ...emu.env(), M365_PASSWORD: wrong });
    expect(result.code, result.stderr + result.stdout).toBe(3);
    expect(parseJson(result).error).toMatchObject({ code: "AUTH_FAILED", serverCode: "AADSTS50126" });
    expectNoSecrets(result, wrong);
  });

  it.skipIf(!existsSync("/usr/bin/script"))(
    "on a terminal it asks for the password without echoing it",
    async () => {
      // `script` gives the command a pseudo-terminal, as a person at a shell has.
      const env = { ...emu.env(), M365_PASSWORD: undefined, TERM: "xterm" };
      const child = spawn(
        "script",
        ["-qec", `${process.execPath} ${BIN} token --resource graph --json`, "/dev/null"],
        {
          env: Object.fromEntries(
            Object.entries(env).filter(([, v]) => v !== undefined),
          ) as NodeJS.ProcessEnv,
          cwd: emu.home,
        },
      );
      let output = "";
      child.stdout.on("data", (chunk) => {
        output += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
      try {
        await until(() => output.includes("Password for support@contoso.com: "), "the password prompt");
        child.stdin.write(`${DEMO_PASSWORD}\r`);
        expect(await exited).toBe(0);
        expect(output).toContain('"audience": "https://graph.microsoft.com"');
        expectNoSecrets({ code: 0, stdout: output, stderr: "" });
      } finally {
        child.kill("SIGKILL");
      }
    },
  );

  it("--password works but warns, and the password is not printed", async () => {
    const result = await cli(["token", "--password", DEMO_PASSWORD], {
      ...emu.env(),
      M365_PASSWORD: undefined,
    });
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(result.stderr).toContain("warning: a password on the command line can be read by other users");
    expectNoSecrets(result);
  });

  it("--verbose log lines of every package stay free of the password and tokens", async () => {
    const doctor = await cli(["doctor", "--verbose", "--pop3"]);
    expect(doctor.stderr).toMatch(/\[(debug|info)\]/);
    expectNoSecrets(doctor);
    const sent = await cli([
      "send",
      "--verbose",
      "--via",
      "smtp",
      "--to",
      SUPPORT,
      "-s",
      unique("verbose"),
      "--text",
      "x",
    ]);
    expect(sent.code, sent.stderr).toBe(0);
    expectNoSecrets(sent);
  });

  it("throttling by Entra ID exits 4 with Retry-After in the JSON error", async () => {
    emu.emulator.admin.armFault({ target: "entra", kind: "status429", retryAfterSeconds: 3600, times: 5 });
    try {
      const result = await cli(["token", "--json"]);
      expect(result.code, result.stderr + result.stdout).toBe(4);
      expect(parseJson(result).error).toMatchObject({
        code: "THROTTLED",
        retryable: true,
        retryAfterSeconds: 3600,
      });
    } finally {
      emu.emulator.admin.clearFaults();
    }
  });
});

describe("configuration sources", () => {
  it("a config-file profile and a password file are enough; --profile picks the profile", async () => {
    const dir = join(emu.home, "profiles");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "password"), `${DEMO_PASSWORD}\n`, { mode: 0o600 });
    const env = emu.env();
    const profile = {
      tenantId: env.M365_TENANT_ID,
      clientId: env.M365_CLIENT_ID,
      username: "alice@contoso.com",
      passwordFile: "password",
      authorityHost: env.M365_AUTHORITY_HOST,
      caFile: env.NODE_EXTRA_CA_CERTS,
      graphOrigin: env.M365_GRAPH_ORIGIN,
    };
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({ defaultProfile: "other", profiles: { emu: profile, other: {} } }),
    );
    const result = await cli(
      ["token", "--json", "--config", join(dir, "config.json"), "--profile", "emu"],
      baseEnv(emu.home),
    );
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(parseJson(result).tokens[0].user).toBe("alice@contoso.com");
    expectNoSecrets(result);

    const missing = await cli(
      ["token", "--config", join(dir, "config.json"), "--profile", "nope"],
      baseEnv(emu.home),
    );
    expect(missing.code, missing.stderr + missing.stdout).toBe(2);
    expect(missing.stderr).toContain("Use one of: emu, other");
  });

  it("reads ./.env; the environment wins over it", async () => {
    const dir = join(emu.home, "dotenv");
    await mkdir(dir, { recursive: true });
    const env = emu.env();
    const lines = Object.entries({ ...env, M365_USERNAME: "alice@contoso.com" })
      .filter(([k]) => k.startsWith("M365_") || k === "NODE_EXTRA_CA_CERTS")
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    await writeFile(join(dir, ".env"), `${lines.join("\n")}\n`);
    const fromFile = await runCli(["token", "--json", "--resource", "graph"], {
      env: baseEnv(emu.home),
      cwd: dir,
    });
    expect(parseJson(fromFile).tokens[0].user).toBe("alice@contoso.com");
    const overridden = await runCli(["token", "--json", "--resource", "graph"], {
      env: { ...baseEnv(emu.home), M365_USERNAME: SUPPORT },
      cwd: dir,
    });
    expect(parseJson(overridden).tokens[0].user).toBe(SUPPORT);
  });

  it("colour only on request and never with NO_COLOR; plain text when piped", async () => {
    const plain = await cli(["folders"]);
    expect(plain.stdout).toContain("Inbox");
    expect(plain.stdout).not.toMatch(/\x1b\[/);
    const forced = await cli(["folders"], { ...emu.env(), FORCE_COLOR: "1" });
    expect(forced.stdout).toMatch(/\x1b\[1mFolder/);
    const noColor = await cli(["folders"], { ...emu.env(), FORCE_COLOR: "1", NO_COLOR: "1" });
    expect(noColor.stdout).not.toMatch(/\x1b\[/);
  });
});

describe("mail and calendar", () => {
  it("send over Graph with an attachment and the body from stdin; list and read it back (--json shapes)", async () => {
    const subject = unique("graph send");
    const file = join(emu.home, "report.csv");
    await writeFile(file, "ticket,state\n42,closed\n");
    const sent = await cli(
      ["send", "--json", "--to", SUPPORT, "-s", subject, "--attach", file],
      emu.env(),
      "Body from stdin\n",
    );
    expectNoSecrets(sent);
    expect(sent.code, sent.stderr + sent.stdout).toBe(0);
    const result = parseJson(sent);
    expect(result).toMatchObject({ ok: true, via: "graph", accepted: [SUPPORT], rejected: [] });
    expect(result.messageId).toMatch(/^<.+@contoso\.com>$/);

    let found: { id: string; subject: string } | undefined;
    for (let i = 0; i < 40 && !found; i++) {
      const listed = parseJson(await cli(["list", "--json", "-n", "10"]));
      expect(listed).toMatchObject({ ok: true, via: "graph", folder: "inbox" });
      found = listed.messages.find((m: { subject: string }) => m.subject === subject);
      if (!found) await new Promise((r) => setTimeout(r, 250));
    }
    expect(found).toBeDefined();
    const read = await cli(["read", found!.id, "--json"]);
    expect(read.code, read.stderr + read.stdout).toBe(0);
    const { message } = parseJson(read);
    expect(message.subject).toBe(subject);
    expect(message.text.trim()).toBe("Body from stdin");
    expect(message.attachments).toEqual([expect.objectContaining({ filename: "report.csv", size: 23 })]);
    expect(message.attachments[0]).not.toHaveProperty("content");

    const human = await cli(["read", found!.id, "--save-attachments", join(emu.home, "saved")]);
    expect(human.stdout).toContain(`Subject:  ${subject}`);
    expect(human.stdout).toContain("Body from stdin");
    expect(await readFile(join(emu.home, "saved", "report.csv"), "utf8")).toBe("ticket,state\n42,closed\n");
  });

  it("a 6 MB attachment (sent through a Graph upload session) is read back byte for byte", async () => {
    const subject = unique("large attachment");
    const bytes = randomBytes(6 * 1024 * 1024);
    await writeFile(join(emu.home, "scan.pdf"), bytes);
    const sent = await cli([
      "send",
      "--to",
      SUPPORT,
      "-s",
      subject,
      "--text",
      "scan attached",
      "--attach",
      join(emu.home, "scan.pdf"),
    ]);
    expect(sent.code, sent.stderr).toBe(0);
    let id: string | undefined;
    for (let i = 0; i < 40 && !id; i++) {
      id = parseJson(await cli(["list", "--json", "-n", "10"])).messages.find(
        (m: { subject: string }) => m.subject === subject,
      )?.id;
      if (!id) await new Promise((r) => setTimeout(r, 250));
    }
    const saved = join(emu.home, "large");
    const read = await cli(["read", id!, "--save-attachments", saved]);
    expect(read.stdout).toContain("scan.pdf  application/pdf, 6.0 MB");
    expect(Buffer.compare(await readFile(join(saved, "scan.pdf")), bytes)).toBe(0);
  });

  it("send over SMTP; a message that does not exist exits 1 (NOT_FOUND)", async () => {
    const sent = await cli([
      "send",
      "--via",
      "smtp",
      "--json",
      "--to",
      "alice@contoso.com",
      "-s",
      unique("smtp"),
      "--text",
      "hi",
    ]);
    expect(sent.code, sent.stderr + sent.stdout).toBe(0);
    expect(parseJson(sent)).toMatchObject({ ok: true, via: "smtp", accepted: ["alice@contoso.com"] });
    const missing = await cli(["read", "AAMkAGI2missing", "--json"]);
    expect(missing.code, missing.stderr + missing.stdout).toBe(1);
    expect(parseJson(missing).error.code).toBe("NOT_FOUND");
  });

  it("send without recipients or with a bad address exits 2 before signing in", async () => {
    expect((await cli(["send", "-s", "x", "--text", "y"])).code).toBe(2);
    const bad = await cli(["send", "--to", "not-an-address", "-s", "x", "--text", "y", "--json"]);
    expect(bad.code, bad.stderr + bad.stdout).toBe(2);
    expect(parseJson(bad).error.code).toBe("MESSAGE_INVALID");
  });

  it("folders and calendar (--json shapes)", async () => {
    const folders = parseJson(await cli(["folders", "--json"]));
    expect(folders.ok).toBe(true);
    expect(folders.folders.map((f: { specialUse?: string }) => f.specialUse)).toEqual(
      expect.arrayContaining(["inbox", "sent", "drafts", "trash"]),
    );
    const calendar = await cli(["calendar", "--json", "--from", "today", "--days", "7"]);
    expect(calendar.code, calendar.stderr + calendar.stdout).toBe(0);
    const { events, start, end } = parseJson(calendar);
    expect(Date.parse(end) - Date.parse(start)).toBe(7 * 86_400_000);
    expect(events.map((e: { subject: string }) => e.subject)).toContain("Customer call: Fabrikam escalation");
    expect(events.map((e: { subject: string }) => e.subject)).not.toContain("Support stand-up");
    const table = await cli(["calendar"]);
    expect(table.stdout).toMatch(/Team offsite/);
  });

  it.skipIf(!HAS_DOVECOT)("list and read over IMAP and POP3 find what Graph sent", async () => {
    const subject = unique("for imap and pop3");
    expect((await cli(["send", "--to", SUPPORT, "-s", subject, "--text", "over every protocol"])).code).toBe(
      0,
    );
    for (const via of ["imap", "pop3"]) {
      let id: string | undefined;
      for (let i = 0; i < 40 && !id; i++) {
        const listed = parseJson(await cli(["list", "--via", via, "--json", "-n", "10"]));
        id = listed.messages.find((m: { subject: string }) => m.subject === subject)?.id;
        if (!id) await new Promise((r) => setTimeout(r, 250));
      }
      expect(id, via).toBeDefined();
      const { message } = parseJson(await cli(["read", id!, "--via", via, "--json"]));
      expect(message.text.trim()).toBe("over every protocol");
    }
  });

  it.skipIf(!HAS_DOVECOT)(
    "watch over IMAP prints a new message as one JSON line and stops after --count",
    async () => {
      const watcher = spawnCli(["watch", "--json", "--count", "1", "--timeout", "60"], {
        env: emu.env(),
        cwd: emu.home,
      });
      try {
        await until(() => watcher.output().stderr.includes("watching inbox"), "the watcher to start");
        const subject = unique("watched");
        // IDLE starts a moment after the banner: send until the watcher reports one of ours.
        let exited = false;
        void watcher.exited.then(() => {
          exited = true;
        });
        for (let i = 0; i < 20 && !exited; i++) {
          await cli(["send", "--via", "smtp", "--to", SUPPORT, "-s", `${subject} #${i}`, "--text", "x"]);
          await Promise.race([watcher.exited, new Promise((r) => setTimeout(r, 1500))]);
        }
        expect(await watcher.exited).toBe(0);
        const lines = watcher.output().stdout.trim().split("\n");
        expect(lines).toHaveLength(1);
        const event = JSON.parse(lines[0]!);
        expect(event).toMatchObject({
          type: "created",
          message: { subject: expect.stringContaining(subject) },
        });
      } finally {
        watcher.child.kill("SIGKILL");
      }
    },
  );

  it("watch --timeout without the expected mail exits 1; Ctrl-C ends watch with 0", async () => {
    const timedOut = await cli([
      "watch",
      "--via",
      "graph",
      "--interval",
      "1",
      "--count",
      "1",
      "--timeout",
      "2",
    ]);
    expect(timedOut.code, timedOut.stderr + timedOut.stdout).toBe(1);
    expect(timedOut.stderr).toContain("0 of 1 message(s) arrived within 2 s");
    const watcher = spawnCli(["watch", "--via", "graph", "--interval", "1"], {
      env: emu.env(),
      cwd: emu.home,
    });
    await until(() => watcher.output().stderr.includes("watching inbox"), "the watcher to start");
    watcher.child.kill("SIGINT");
    expect(await watcher.exited).toBe(0);
  });
});

describe("emulator command", () => {
  it("runs the emulator, writes a .env the CLI can use, and stops on SIGINT", async () => {
    const dir = join(emu.home, "own-emulator");
    await mkdir(dir, { recursive: true });
    const envFile = join(dir, "emulator.env");
    const running = spawnCli(
      [
        "emulator",
        "--json",
        "--port",
        "0",
        "--no-dovecot",
        "--data-dir",
        join(dir, "data"),
        "--write-env",
        envFile,
      ],
      {
        env: baseEnv(emu.home),
        cwd: dir,
      },
    );
    try {
      await until(() => running.output().stdout.trim().endsWith("}"), "the emulator's settings", 60_000);
      const info = JSON.parse(running.output().stdout);
      expect(info).toMatchObject({ ok: true, parts: { graph: { running: true }, smtp: { running: true } } });
      expect(info.env.M365_PASSWORD_FILE).toBeDefined();
      expect(running.output().stdout).not.toContain(DEMO_PASSWORD);
      expect((await stat(info.env.M365_PASSWORD_FILE)).mode & 0o077).toBe(0);
      const doctor = await runCli(["--env-file", envFile, "doctor", "--json"], {
        env: baseEnv(emu.home),
        cwd: dir,
      });
      expectNoSecrets(doctor);
      const report = parseJson(doctor);
      expect(report.checks.find((c: { id: string }) => c.id === "smtp").status).toBe("pass");
      expect(report.checks.find((c: { id: string }) => c.id === "sign-in").status).toBe("pass");
      running.child.kill("SIGINT");
      expect(await running.exited).toBe(0);
    } finally {
      running.child.kill("SIGKILL");
    }
  });
});
