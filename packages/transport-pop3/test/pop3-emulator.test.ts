/**
 * Against the real thing: the emulator's Entra ID issues tokens through a real ROPC provider, and Debian's
 * Dovecot serves POP3 over the emulator's mailbox store, checking each token by introspection.
 * Skipped where Dovecot is not installed (`.ci/run` installs it).
 */
import { randomBytes } from "node:crypto";
import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { AccessToken, GetTokenOptions, MessageSummary, Resource, TokenProvider } from "@m365-mail/core";
import { M365MailError } from "@m365-mail/core";
import {
  type DovecotPart,
  dovecotPart,
  findDovecot,
  type MailStore,
  startTestEmulator,
  type TestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { curl, curlSpeaks, needs } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pop3TransportOptions, pop3Transport } from "../src/index.js";
import { mime } from "./fake-pop3-server.js";

// In CI a missing Dovecot fails this file with the install command; locally the suite skips with a notice.
const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);

const SUPPORT = "support@contoso.com";

let emulator: TestEmulator;
let dovecot: DovecotPart;
let store: MailStore;
const providers: TokenProvider[] = [];

function provider(username = SUPPORT): TokenProvider {
  const auth = ropcTokenProvider({ ...tokenProviderOptions(emulator, username), engine: "http" });
  providers.push(auth);
  return auth;
}

/** Hands out a Graph token when asked for Outlook: what the short scope `POP.AccessAsUser.All` gets you. */
function graphTokenProvider(inner: TokenProvider): TokenProvider & { calls: number } {
  const wrapper = {
    kind: "token-provider" as const,
    name: "short-scope",
    username: inner.username,
    ...(inner.cloud ? { cloud: inner.cloud } : {}),
    calls: 0,
    getAccessToken(_resource: Resource, options?: GetTokenOptions): Promise<AccessToken> {
      wrapper.calls++;
      return inner.getAccessToken("graph", options);
    },
  };
  return wrapper;
}

function transport(auth: TokenProvider, extra: Partial<Pop3TransportOptions> = {}) {
  // Host and port come from the token provider's cloud: the emulator's preset points at its Dovecot.
  return pop3Transport({ auth, ca: emulator.caPem, timeoutMs: 20_000, ...extra });
}

async function collect(iterable: AsyncIterable<MessageSummary>): Promise<MessageSummary[]> {
  const out: MessageSummary[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<M365MailError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    return error as M365MailError;
  }
  throw new Error("expected a rejection");
}

/** A message with a text part, an HTML part and a binary attachment, unique per call. */
function reportMessage(attachment: Buffer, to = SUPPORT) {
  const tag = randomBytes(4).toString("hex");
  const source = mime([
    "From: Bob <bob@fabrikam.com>",
    `To: ${to}`,
    `Subject: Report ${tag}`,
    `Message-ID: <${tag}@fabrikam.com>`,
    "Date: Tue, 3 Jun 2025 09:59:00 +0000",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="mix"',
    "",
    "--mix",
    'Content-Type: multipart/alternative; boundary="alt"',
    "",
    "--alt",
    "Content-Type: text/plain; charset=utf-8",
    "",
    `Report ${tag} attached.`,
    ".a line with a leading dot",
    "--alt",
    "Content-Type: text/html; charset=utf-8",
    "",
    `<p>Report <b>${tag}</b> attached.</p>`,
    "--alt--",
    "--mix",
    'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Disposition: attachment; filename="data.bin"',
    "Content-Transfer-Encoding: base64",
    "",
    ...(attachment.toString("base64").match(/.{1,76}/g) ?? []),
    "--mix--",
  ]);
  return { tag, source };
}

describe.skipIf(dovecotMissing)("pop3Transport against the emulator's Dovecot", () => {
  beforeAll(async () => {
    dovecot = dovecotPart({ pop3StartTlsPort: 0 });
    emulator = await startTestEmulator({ prefix: "m365-pop3-transport-", parts: [dovecot] });
    if (!dovecot.server)
      throw new Error(`the Dovecot part did not start: ${JSON.stringify(emulator.parts.dovecot)}`);
    store = emulator.store;
  });

  afterAll(async () => {
    for (const auth of providers.splice(0)) await auth.dispose?.();
    await emulator?.stop();
  });

  it("verify signs in with a real ROPC token and runs STAT", async () => {
    const pop3 = transport(provider());
    const report = await pop3.verify();
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(pop3.endpoint.port).toBe(dovecot.server!.pop3Port);
  });

  it("upgrades a plain POP3 port with STLS", async () => {
    const port = dovecot.server!.pop3StartTlsPort!;
    const report = await transport(provider(), { tls: "starttls", port }).verify();
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === "connect")?.detail).toContain(`${port} (STLS)`);
  });

  it("reads a delivered message: headers in the list, bodies and a byte-identical attachment in getMessage", async () => {
    const attachment = randomBytes(300_000);
    const { tag, source } = reportMessage(attachment);
    await store.deliver(SUPPORT, "inbox", source);
    const pop3 = transport(provider());
    const summary = (await collect(pop3.listMessages())).find((m) => m.subject === `Report ${tag}`);
    expect(summary).toMatchObject({
      folder: "inbox",
      from: { address: "bob@fabrikam.com", name: "Bob" },
      to: [{ address: SUPPORT }],
      internetMessageId: `<${tag}@fabrikam.com>`,
    });
    expect(summary!.size).toBeGreaterThanOrEqual(source.length);

    const message = await pop3.getMessage(summary!.id);
    expect(message.text).toBe(`Report ${tag} attached.\n.a line with a leading dot`);
    expect(message.html).toBe(`<p>Report <b>${tag}</b> attached.</p>`);
    expect(message.attachments.map((a) => a.filename)).toEqual(["data.bin"]);
    expect(Buffer.from(message.attachments[0]!.content).equals(attachment)).toBe(true);
    expect(Buffer.from(message.raw!).equals(source)).toBe(true);
    await pop3.close();
  });

  it("deleteAfterRead removes the message from the mailbox once read", async () => {
    const { tag, source } = reportMessage(randomBytes(1000));
    await store.deliver(SUPPORT, "inbox", source);
    const pop3 = transport(provider(), { deleteAfterRead: true });
    const summary = (await collect(pop3.listMessages())).find((m) => m.subject === `Report ${tag}`);
    await pop3.getMessage(summary!.id);
    const after = await collect(transport(provider()).listMessages());
    expect(after.some((m) => m.id === summary!.id)).toBe(false);
    expect((await rejection(transport(provider()).getMessage(summary!.id))).code).toBe("NOT_FOUND");
  });

  it("a Graph token (the short-scope mistake) is WRONG_SCOPE naming the full scope", async () => {
    const auth = graphTokenProvider(provider());
    const error = await rejection(collect(transport(auth).listMessages()));
    expect(error.code).toBe("WRONG_SCOPE");
    expect(error.hint).toContain("https://outlook.office.com/POP.AccessAsUser.All");
    expect(auth.calls).toBe(1);
  });

  it("a mailbox with POP3 turned off gives PROTOCOL_DISABLED pointing at Manage email apps", async () => {
    const pop3 = transport(provider("nopop@contoso.com"));
    const error = await rejection(pop3.getMessage("anything"));
    expect(error.code).toBe("PROTOCOL_DISABLED");
    expect(error.hint).toContain("Manage email apps → POP3 on");
    const report = await pop3.verify();
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => !c.ok)).toMatchObject({ name: "POP3 AUTH" });
  });

  it("opens a shared mailbox with the delegate's token, and refuses a mailbox the user may not open", async () => {
    const { tag, source } = reportMessage(randomBytes(100), "shared@contoso.com");
    await store.deliver("shared@contoso.com", "inbox", source);
    const shared = await collect(transport(provider(), { mailbox: "shared@contoso.com" }).listMessages());
    expect(shared.map((m) => m.subject)).toContain(`Report ${tag}`);

    const error = await rejection(
      collect(transport(provider(), { mailbox: "alice@contoso.com" }).listMessages()),
    );
    expect(error.code).toBe("ACCESS_DENIED");
    expect(error.hint).toContain("Full Access");
  });

  it.skipIf(!curlSpeaks("pop3s"))(
    "curl, an independent client, reads the message over POP3S with a bearer token",
    async () => {
      const { tag, source } = reportMessage(randomBytes(64));
      await store.deliver(SUPPORT, "inbox", source);
      const { token } = await provider().getAccessToken("outlook");
      // Options on stdin (`-K -`), so the token never shows on a command line. Message 1 is the newest
      // delivery only in an empty maildrop: list with UIDL first and fetch the last one.
      const base = [
        `user = "${SUPPORT}"`,
        `oauth2-bearer = "${token}"`,
        `cacert = "${emulator.caPath}"`,
        "silent",
        "show-error",
      ];
      const port = emulator.cloud.pop3.port;
      const listing = await curl([`url = "pop3s://127.0.0.1:${port}/"`, ...base].join("\n"));
      expect(listing.code, listing.stderr).toBe(0);
      const count = listing.stdout.trim().split(/\r?\n/).length;
      const fetched = await curl([`url = "pop3s://127.0.0.1:${port}/${count}"`, ...base].join("\n"));
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(fetched.stdout).toContain(`Report ${tag}`);
    },
  );
});
