import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { DEFAULT_SMTP_LIMITS, type SmtpEmulatorPart, smtpPart } from "../src/index.js";
import { httpsRequest, passwordGrant, postJson, startTestEmulator } from "./helpers.js";
import { memorySink, message, RawSmtpClient } from "./smtp-fixtures.js";

const TAIL = /\[EMU01PR00CA0001\.emulator\.prod\.outlook\.com \d{4}-\d\d-\d\dT[\d:.]+Z [0-9A-F]{16}\]$/;
const SMTP_SCOPE = "https://outlook.office.com/SMTP.Send";

let emulator: Emulator;
let cleanup: () => Promise<void>;
let smtp: SmtpEmulatorPart;
const sink = memorySink();
const clients: RawSmtpClient[] = [];

/** An access token from the emulator's token endpoint (a real password grant). */
async function token(username = "support@contoso.com", scope = SMTP_SCOPE): Promise<string> {
  const answer = await passwordGrant(emulator, { username, scope });
  expect(answer.status).toBe(200);
  return answer.json.access_token as string;
}

async function signIn(user: string, accessToken: string) {
  const result = await RawSmtpClient.signIn(smtp.port, emulator.caPem, user, accessToken);
  clients.push(result.client);
  return result;
}

beforeAll(async () => {
  smtp = smtpPart({ store: sink });
  ({ emulator, cleanup } = await startTestEmulator({ parts: [smtp] }));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  const tenant = emulator.context.directory().tenants[0]!;
  tenant.smtpAuthEnabled = true;
  tenant.securityDefaults = false;
  emulator.admin.setTokenLifetime(3600);
  emulator.admin.clearFaults();
  emulator.admin.resetCounts();
  smtp.setLimits(DEFAULT_SMTP_LIMITS);
  // Let closed sessions leave the connection count before the next test starts.
  await waitFor(() => Object.keys(smtp.stats().open).length === 0);
  smtp.resetStats();
  sink.clear();
});

afterAll(async () => cleanup?.());

describe("SMTP submission: connection and STARTTLS", () => {
  it("greets like Exchange and offers AUTH XOAUTH2 only after STARTTLS", async () => {
    const { client, greeting } = await RawSmtpClient.connect(smtp.port);
    clients.push(client);
    expect(greeting).toMatch(/^220 .*Microsoft ESMTP MAIL Service ready/);
    const ehlo = await client.command("EHLO client.test");
    expect(ehlo).toContain("STARTTLS");
    expect(ehlo).not.toContain("AUTH");
    expect(await client.command("AUTH XOAUTH2 dXNlcj1h")).toMatch(/^5\d\d /);
    expect(await client.command("MAIL FROM:<support@contoso.com>")).toMatch(/^530 5\.7\.57 /);
    expect(await client.startTls(emulator.caPem)).toMatch(/^220 /);
    const secureEhlo = await client.command("EHLO client.test");
    expect(secureEhlo).toMatch(/AUTH XOAUTH2/);
    expect(secureEhlo).not.toMatch(/AUTH.*(PLAIN|LOGIN)/);
  });

  it("answers MAIL FROM before AUTH with Exchange's 530 5.7.57", async () => {
    const { client } = await RawSmtpClient.connect(smtp.port);
    clients.push(client);
    await client.command("EHLO client.test");
    await client.startTls(emulator.caPem);
    await client.command("EHLO client.test");
    expect(await client.command("MAIL FROM:<support@contoso.com>")).toMatch(
      /^530 5\.7\.57 Client not authenticated to send mail\. \[/,
    );
  });
});

describe("SMTP submission: AUTH XOAUTH2 replies", () => {
  it("accepts a token for the mailbox with SMTP.Send", async () => {
    const { auth } = await signIn("support@contoso.com", await token());
    expect(auth).toMatch(/^235 /);
    expect(emulator.admin.counts()["smtp.auth.ok"]).toBe(1);
  });

  it("refuses a Graph token with 535 5.7.3 straight away (no 334 challenge)", async () => {
    const graphToken = await token("support@contoso.com", "https://graph.microsoft.com/Mail.Send");
    const { auth } = await signIn("support@contoso.com", graphToken);
    expect(auth).toMatch(/^535 5\.7\.3 Authentication unsuccessful /);
    expect(auth).toMatch(TAIL);
  });

  it("refuses a token without SMTP.Send", async () => {
    // Tokens carry every consented permission of their resource (as Microsoft's do): take SMTP.Send's consent away.
    const app = emulator.context.directory().tenants[0]!.apps[0]!;
    const granted = structuredClone(app.grantedPermissions);
    emulator.admin.updateApp(app.clientId, {
      grantedPermissions: { ...granted, outlook: ["IMAP.AccessAsUser.All"] },
    });
    let imapToken: string;
    try {
      imapToken = await token("support@contoso.com", "https://outlook.office.com/IMAP.AccessAsUser.All");
    } finally {
      emulator.admin.updateApp(app.clientId, { grantedPermissions: granted });
    }
    expect((await signIn("support@contoso.com", imapToken)).auth).toMatch(
      /^535 5\.7\.3 Authentication unsuccessful /,
    );
  });

  it("refuses user= naming a mailbox the token's user may not send as", async () => {
    const supportToken = await token();
    expect((await signIn("alice@contoso.com", supportToken)).auth).toMatch(
      /^535 5\.7\.3 Authentication unsuccessful /,
    );
  });

  it("accepts user= a shared mailbox when the token's user is its delegate", async () => {
    const supportToken = await token();
    expect((await signIn("shared@contoso.com", supportToken)).auth).toMatch(/^235 /);
    const aliceToken = await token("alice@contoso.com");
    expect((await signIn("shared@contoso.com", aliceToken)).auth).toMatch(/^535 5\.7\.3 /);
  });

  it("refuses expired, revoked and unknown tokens with 535 5.7.3", async () => {
    emulator.admin.setTokenLifetime(1);
    const expired = await token();
    await waitFor(() => {
      const check = emulator.context.verifyAccessToken(expired);
      return !check.ok && check.reason === "expired";
    }, 5_000);
    expect((await signIn("support@contoso.com", expired)).auth).toMatch(/^535 5\.7\.3 /);
    emulator.admin.setTokenLifetime(3600);
    const revoked = await token("alice@contoso.com");
    emulator.admin.revokeTokens("alice@contoso.com");
    expect((await signIn("alice@contoso.com", revoked)).auth).toMatch(/^535 5\.7\.3 /);
    expect((await signIn("support@contoso.com", "not-a-token")).auth).toMatch(/^535 5\.7\.3 /);
  });

  it("answers 535 5.7.139 (Mailbox) when SMTP AUTH is off for the mailbox", async () => {
    const { auth } = await signIn("nosmtp@contoso.com", await token("nosmtp@contoso.com"));
    expect(auth).toMatch(
      /^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox\. Visit https:\/\/aka\.ms\/smtp_auth_disabled for more information\. \[/,
    );
  });

  it("answers 535 5.7.139 (Tenant) when SMTP AUTH is off for the tenant or Security Defaults are on", async () => {
    const tenant = emulator.context.directory().tenants[0]!;
    tenant.smtpAuthEnabled = false;
    const off = await signIn("support@contoso.com", await token());
    expect(off.auth).toMatch(
      /^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant\. Visit https:\/\/aka\.ms\/smtp_auth_disabled for more information\. \[/,
    );
    tenant.smtpAuthEnabled = true;
    const beforeDefaults = await token(); // Security Defaults would refuse the password grant itself
    tenant.securityDefaults = true;
    const defaults = await signIn("support@contoso.com", beforeDefaults);
    expect(defaults.auth).toMatch(/^535 5\.7\.139 .*disabled for the Tenant\./);
  });
});

describe("SMTP submission: delivery", () => {
  it("delivers to each in-tenant recipient's Inbox and keeps a copy in the sender's Sent Items", async () => {
    const { client } = await signIn("support@contoso.com", await token());
    const reply = await client.sendMail(
      "support@contoso.com",
      ["alice@contoso.com", "someone@fabrikam.example"],
      message(
        "Contoso Support <support@contoso.com>",
        "alice@contoso.com",
        "Ticket 42",
        "<ticket-42@contoso.com>",
      ),
    );
    expect(reply).toMatch(/^250 2\.0\.0 OK <ticket-42@contoso\.com> \[Hostname=/);
    expect(sink.in("alice@contoso.com", "inbox").map((m) => m.raw)).toEqual([
      expect.stringContaining("Subject: Ticket 42"),
    ]);
    expect(sink.in("support@contoso.com", "sentitems")).toEqual([expect.objectContaining({ seen: true })]);
    expect(sink.in("alice@contoso.com", "inbox")[0]!.seen).toBe(false);
    expect(sink.messages).toHaveLength(2);
    expect(emulator.admin.counts()).toMatchObject({ "smtp.messages": 1, "smtp.recipients.external": 1 });
  });

  it("keeps Sent Items in the shared mailbox when a delegate sends as it", async () => {
    const { client } = await signIn("shared@contoso.com", await token());
    const reply = await client.sendMail(
      "shared@contoso.com",
      ["alice@contoso.com"],
      message("shared@contoso.com", "alice@contoso.com", "From the shared inbox"),
    );
    expect(reply).toMatch(/^250 /);
    expect(sink.in("shared@contoso.com", "sentitems")).toHaveLength(1);
    expect(sink.in("support@contoso.com", "sentitems")).toHaveLength(0);
  });

  it("answers 554 5.2.252 SendAsDenied after DATA when From is another mailbox", async () => {
    const { client } = await signIn("support@contoso.com", await token());
    const header = await client.sendMail(
      "support@contoso.com",
      ["alice@contoso.com"],
      message("alice@contoso.com", "alice@contoso.com", "Spoof"),
    );
    expect(header).toMatch(
      /^554 5\.2\.252 SendAsDenied; support@contoso\.com not allowed to send as alice@contoso\.com; STOREDRV\.Submission\.Exception:SendAsDeniedException\.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message \[BeginDiagnosticData\]Cannot submit message\. \[/,
    );
    const envelope = await client.sendMail(
      "alice@contoso.com",
      ["alice@contoso.com"],
      message("support@contoso.com", "alice@contoso.com", "Envelope spoof"),
    );
    expect(envelope).toMatch(
      /^554 5\.2\.252 SendAsDenied; support@contoso\.com not allowed to send as alice@contoso\.com;/,
    );
    expect(sink.messages).toHaveLength(0);
    // The session survives a refused message, as Exchange's does.
    expect(
      await client.sendMail(
        "support@contoso.com",
        ["alice@contoso.com"],
        message("support@contoso.com", "alice@contoso.com", "OK"),
      ),
    ).toMatch(/^250 /);
  });

  it("lets a delegate put the shared mailbox in From while signed in as itself", async () => {
    const { client } = await signIn("support@contoso.com", await token());
    const reply = await client.sendMail(
      "shared@contoso.com",
      ["alice@contoso.com"],
      message("shared@contoso.com", "alice@contoso.com", "Send As"),
    );
    expect(reply).toMatch(/^250 /);
  });

  it("keeps a session working after its token is revoked or expires, until the next AUTH", async () => {
    const aliceToken = await token("alice@contoso.com");
    const { client } = await signIn("alice@contoso.com", aliceToken);
    emulator.admin.revokeTokens("alice@contoso.com");
    const reply = await client.sendMail(
      "alice@contoso.com",
      ["support@contoso.com"],
      message("alice@contoso.com", "support@contoso.com", "After revoke"),
    );
    expect(reply).toMatch(/^250 /);
    expect((await signIn("alice@contoso.com", aliceToken)).auth).toMatch(/^535 5\.7\.3 /);
  });
});

describe("SMTP submission: limits", () => {
  it("answers a 4th concurrent connection of one mailbox with 432 4.3.2, and lets it send once one closes", async () => {
    const sessions = [];
    for (let i = 0; i < 4; i++) {
      const { client, auth } = await signIn("support@contoso.com", await token());
      expect(auth).toMatch(/^235 /);
      sessions.push(client);
    }
    const body = message("support@contoso.com", "alice@contoso.com", "Fourth");
    const fourth = await sessions[3]!.sendMail("support@contoso.com", ["alice@contoso.com"], body);
    expect(fourth).toMatch(
      /^432 4\.3\.2 Concurrent connections limit exceeded\. Visit https:\/\/aka\.ms\/concurrent_sending for more information\. \[/,
    );
    expect(await sessions[0]!.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
    expect(smtp.stats().peak["support@contoso.com"]).toBe(4);
    expect(emulator.admin.counts()["smtp.connections.peak:support@contoso.com"]).toBe(4);

    expect(await sessions[0]!.command("QUIT")).toMatch(/^221 /);
    await waitFor(() => smtp.stats().open["support@contoso.com"] === 3);
    expect(await sessions[3]!.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
  });

  it("counts connections per mailbox: another mailbox is not affected", async () => {
    for (let i = 0; i < 3; i++) await signIn("support@contoso.com", await token());
    const { client } = await signIn("alice@contoso.com", await token("alice@contoso.com"));
    expect(
      await client.sendMail(
        "alice@contoso.com",
        ["support@contoso.com"],
        message("alice@contoso.com", "support@contoso.com", "Hi"),
      ),
    ).toMatch(/^250 /);
  });

  it("in reject mode answers messages over the per-window rate with 421 4.4.2", async () => {
    smtp.setLimits({ messagesPerWindow: 2, rateLimitMode: "reject" });
    const { client } = await signIn("support@contoso.com", await token());
    const body = message("support@contoso.com", "alice@contoso.com", "Burst");
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(
      /^421 4\.4\.2 Message submission rate for this client has exceeded the configured limit \[/,
    );
    expect(emulator.admin.counts()["smtp.rate.rejected"]).toBe(1);
  });

  it("in delay mode (the default) accepts messages over the rate and delivers them in a later window", async () => {
    smtp.setLimits({ messagesPerWindow: 1 });
    const { client } = await signIn("support@contoso.com", await token());
    const first = message("support@contoso.com", "alice@contoso.com", "First");
    const second = message("support@contoso.com", "alice@contoso.com", "Second");
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], first)).toMatch(/^250 /);
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], second)).toMatch(/^250 /);
    expect(sink.in("alice@contoso.com", "inbox").map((m) => m.raw)).toEqual([
      expect.stringContaining("Subject: First"),
    ]);
    expect(smtp.stats().delayed).toBe(1);
    client.close();
    await smtp.stop(); // delivers what the rate limit still holds
    expect(sink.in("alice@contoso.com", "inbox")).toHaveLength(2);
    await smtp.start(emulator.context);
  });

  it("lifts the rate limit with messagesPerWindow 0", async () => {
    smtp.setLimits({ messagesPerWindow: 0, rateLimitMode: "reject" });
    const { client } = await signIn("support@contoso.com", await token());
    const body = message("support@contoso.com", "alice@contoso.com", "Many");
    for (let i = 0; i < 40; i++) {
      expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
    }
    expect(sink.in("alice@contoso.com", "inbox")).toHaveLength(40);
  });

  it("refuses a message past the daily recipient limit with 554 5.2.0, whole, until the window frees up", async () => {
    // m365-facts.md: 10,000 recipients a day (`554 5.2.0`); shortened here to 3 in 1 s.
    smtp.setLimits({ recipientsPerDay: 3, recipientWindowMs: 1000 });
    // Earlier tests' recipients leave the window first.
    await new Promise((resolve) => setTimeout(resolve, 1050));
    const { client } = await signIn("support@contoso.com", await token());
    const two = ["alice@contoso.com", "support@contoso.com"];
    const body = message("support@contoso.com", "alice@contoso.com", "Quota");
    expect(await client.sendMail("support@contoso.com", two, body)).toMatch(/^250 /);
    expect(await client.sendMail("support@contoso.com", two, body)).toMatch(
      /^554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException; /,
    );
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
    expect(sink.in("alice@contoso.com", "inbox")).toHaveLength(2);
    expect(sink.in("support@contoso.com", "inbox")).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 1050));
    expect(await client.sendMail("support@contoso.com", two, body)).toMatch(/^250 /);
    expect(emulator.admin.counts()["smtp.rejected.quota"]).toBe(1);
    expect(() => smtp.setLimits({ recipientsPerDay: -1 })).toThrow(/recipientsPerDay/);
  });

  it("refuses invalid limits with CONFIG_INVALID", () => {
    expect(() => smtp.setLimits({ maxConnectionsPerMailbox: 0 })).toThrow(/maxConnectionsPerMailbox/);
    expect(() => smtp.setLimits({ rateLimitMode: "drop" as "delay" })).toThrow(/rateLimitMode/);
    expect(smtp.limits().maxConnectionsPerMailbox).toBe(3);
  });
});

describe("SMTP submission: admin API", () => {
  it("reads and changes the limits at /_admin/parts/smtp", async () => {
    const changed = await postJson(
      emulator,
      "/_admin/parts/smtp",
      { messagesPerWindow: 0, rateLimitMode: "reject" },
      "PATCH",
    );
    expect(changed.status).toBe(200);
    expect(changed.json.limits).toMatchObject({
      messagesPerWindow: 0,
      rateLimitMode: "reject",
      maxConnectionsPerMailbox: 3,
    });
    expect(smtp.limits().messagesPerWindow).toBe(0);
    const read = await httpsRequest(emulator, `${emulator.authorityHost}/_admin/parts/smtp`);
    expect(read.json.limits.rateLimitMode).toBe("reject");
    const bad = await postJson(emulator, "/_admin/parts/smtp", { maxConnectionsPerMailbox: -1 }, "PATCH");
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("CONFIG_INVALID");
  });

  it("reports the SMTP endpoint in the emulator's cloud preset and env", () => {
    expect(emulator.cloud.smtp).toEqual({ host: "127.0.0.1", port: smtp.port });
    expect(emulator.env().M365_SMTP_PORT).toBe(String(smtp.port));
  });
});

describe("SMTP submission: faults", () => {
  it("answers 451 4.7.0 at the end of DATA for an armed 5xx fault, once", async () => {
    emulator.admin.armFault({ target: "smtp", path: "/data", kind: "status503" });
    const { client } = await signIn("support@contoso.com", await token());
    const body = message("support@contoso.com", "alice@contoso.com", "Faulty");
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(
      /^451 4\.7\.0 Temporary server error\. Please try again later\. PRX4 \[/,
    );
    expect(await client.sendMail("support@contoso.com", ["alice@contoso.com"], body)).toMatch(/^250 /);
  });

  it("drops the connection for an armed reset fault", async () => {
    emulator.admin.armFault({ target: "smtp", path: "/mail", kind: "reset" });
    const { client } = await signIn("support@contoso.com", await token());
    expect(await client.command("MAIL FROM:<support@contoso.com>")).toBe("");
    expect(client.closed).toBe(true);
  });
});

describe("SMTP submission: an independent client", () => {
  const curl = spawnSync("curl", ["--version"], { encoding: "utf8" });
  const hasCurl = curl.status === 0 && /\bsmtp\b/.test(curl.stdout);

  it.skipIf(!hasCurl)("curl sends with --oauth2-bearer over STARTTLS", async () => {
    const dir = await mkdtemp(join(tmpdir(), "m365-curl-"));
    try {
      const eml = join(dir, "msg.eml");
      const ca = join(dir, "ca.pem");
      await writeFile(eml, message("support@contoso.com", "alice@contoso.com", "Sent by curl"));
      await writeFile(ca, emulator.caPem);
      const accessToken = await token();
      const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn("curl", [
          "--silent",
          "--show-error",
          "--max-time",
          "20",
          "--url",
          `smtp://127.0.0.1:${smtp.port}`,
          "--ssl-reqd",
          "--mail-from",
          "support@contoso.com",
          "--mail-rcpt",
          "alice@contoso.com",
          "--upload-file",
          eml,
          "--user",
          "support@contoso.com",
          "--oauth2-bearer",
          accessToken,
          "--cacert",
          ca,
        ]);
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => {
          stderr += c.toString();
        });
        child.on("close", (status) => resolve({ status, stderr }));
      });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
      expect(sink.in("alice@contoso.com", "inbox").map((m) => m.raw)).toEqual([
        expect.stringContaining("Sent by curl"),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Polls a condition (bounded); for state that settles asynchronously, not for timing. */
async function waitFor(condition: () => boolean, maxMs = 2_000): Promise<void> {
  const until = Date.now() + maxMs;
  while (!condition() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}
