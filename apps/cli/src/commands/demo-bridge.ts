import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { Bridge } from "@m365-mail/bridge";
import { silentLogger } from "@m365-mail/core";
import type { Emulator } from "@m365-mail/emulator";

/** The demo's user under MFA (the password grant refuses it) and the local login a device uses for it. */
export const MFA_USER = "mfa@contoso.com";
export const MFA_LOGIN = "mfa-device";

export interface DemoBridge {
  readonly bridge: Bridge;
  /** The device's local secret for MFA_LOGIN (random per run; only its scrypt hash is in the config). */
  readonly mfaSecret: string;
  /** `m365-mail bridge login` for MFA_LOGIN, with the emulator approving the code as the person would. */
  signInMfaUser(): Promise<void>;
}

/**
 * The demo's bridge: SMTP and IMAP on loopback, the demo user's own password in (passthrough), OAuth2
 * out; and a local login for a user under MFA, signed in once with a device code. The clients below are
 * deliberately dumb — they know a username and a password, nothing else.
 */
export async function startDemoBridge(
  emulator: Emulator,
  imap: boolean,
  dataDir: string,
): Promise<DemoBridge> {
  const { hashSecret, signInAccount, startBridge, validateBridgeConfig } = await import("@m365-mail/bridge");
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const keyFile = join(dataDir, "token-cache.key");
  await writeFile(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  const mfaSecret = randomBytes(12).toString("base64url");
  const config = validateBridgeConfig(
    {
      dataDir,
      listeners: [
        { protocol: "smtp", host: "127.0.0.1", port: 0, security: "plain" },
        ...(imap
          ? [{ protocol: "imap" as const, host: "127.0.0.1", port: 0, security: "plain" as const }]
          : []),
      ],
      tokenCache: { type: "file", path: join(dataDir, "tokens.json"), keyFile },
      accounts: [
        { credentials: { mode: "passthrough", username: "support@contoso.com" } },
        {
          name: MFA_LOGIN,
          credentials: {
            mode: "mapped",
            login: MFA_LOGIN,
            secretHash: await hashSecret(mfaSecret),
            username: MFA_USER,
            signIn: "device-code",
          },
        },
      ],
    },
    emulator.env(),
  );
  const bridge = await startBridge(config, { logger: silentLogger });
  return {
    bridge,
    mfaSecret,
    async signInMfaUser() {
      // Poll every second instead of Microsoft's 5: the "person" below approves at once.
      emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
      await signInAccount(config, MFA_LOGIN, {
        onDeviceCode: (info) => {
          emulator.admin.approveDeviceCode(info.userCode, MFA_USER);
        },
      });
    },
  };
}

/** One line-based conversation: `send()` writes a line and resolves with the reply that `done` recognises. */
function conversation(port: number) {
  const socket: Socket = connect(port, "127.0.0.1");
  let buffer = "";
  let pending:
    | { done: (text: string) => number; resolve: (r: string) => void; reject: (e: Error) => void }
    | undefined;
  const check = () => {
    if (!pending) return;
    const end = pending.done(buffer);
    if (end < 0) return;
    const reply = buffer.slice(0, end);
    buffer = buffer.slice(end);
    const p = pending;
    pending = undefined;
    p.resolve(reply);
  };
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    check();
  });
  socket.on("error", (error) => pending?.reject(error));
  const expect = (done: (text: string) => number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer from the bridge (so far: ${buffer.trim()})`)),
        30_000,
      );
      pending = {
        done,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject,
      };
      check();
    });
  return {
    expect,
    send(line: string, done: (text: string) => number) {
      socket.write(`${line}\r\n`);
      return expect(done);
    },
    close: () => socket.destroy(),
  };
}

/** End of an SMTP reply: its last line is "NNN text". */
const smtpReply = (text: string) => {
  const m = /(?:^|\r\n)\d{3} [^\r\n]*\r\n/.exec(text);
  return m ? m.index + m[0].length : -1;
};

function must(reply: string, code: RegExp, step: string): void {
  if (!code.test(reply)) throw new Error(`${step}: the bridge answered ${reply.trim().split("\r\n").pop()}`);
}

/** AUTH PLAIN with the password, as a scanner or an old program would; returns the bridge's final 250. */
export async function sendWithPassword(
  port: number,
  user: string,
  password: string,
  to: string,
  subject: string,
  from = user,
): Promise<string> {
  const c = conversation(port);
  try {
    must(await c.expect(smtpReply), /^220/, "greeting");
    must(await c.send("EHLO demo-scanner", smtpReply), /^250/, "EHLO");
    must(
      await c.send(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString("base64")}`, smtpReply),
      /^235/,
      "AUTH PLAIN",
    );
    must(await c.send(`MAIL FROM:<${from}>`, smtpReply), /^250/, "MAIL FROM");
    must(await c.send(`RCPT TO:<${to}>`, smtpReply), /^250/, "RCPT TO");
    must(await c.send("DATA", smtpReply), /^354/, "DATA");
    const message = [
      `From: ${from}`,
      `To: ${to}`,
      `Subject: ${subject}`,
      "",
      "Sent by a client that only knows a password.",
      ".",
    ].join("\r\n");
    const accepted = await c.send(message, smtpReply);
    must(accepted, /^250/, "end of DATA");
    await c.send("QUIT", smtpReply).catch(() => "");
    return accepted.trim();
  } finally {
    c.close();
  }
}

/** IMAP LOGIN with the password, then SEARCH for the subject; resolves with how many messages matched. */
export async function findWithPassword(
  port: number,
  user: string,
  password: string,
  subject: string,
): Promise<number> {
  const c = conversation(port);
  const tagged = (tag: string) => (text: string) => {
    const m = new RegExp(`(?:^|\\r\\n)${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`).exec(text);
    return m ? m.index + m[0].length : -1;
  };
  try {
    await c.expect((t) => (/\r\n/.test(t) ? t.indexOf("\r\n") + 2 : -1));
    const quote = (s: string) => `"${s.replace(/(["\\])/g, "\\$1")}"`;
    must(await c.send(`a LOGIN ${quote(user)} ${quote(password)}`, tagged("a")), /a OK/, "LOGIN");
    must(await c.send("b SELECT INBOX", tagged("b")), /b OK/, "SELECT");
    const search = await c.send(`c SEARCH SUBJECT ${quote(subject)}`, tagged("c"));
    must(search, /c OK/, "SEARCH");
    const ids = /\* SEARCH([ \d]*)/.exec(search)?.[1]?.trim();
    await c.send("d LOGOUT", tagged("d")).catch(() => "");
    return ids ? ids.split(/\s+/).length : 0;
  } finally {
    c.close();
  }
}
