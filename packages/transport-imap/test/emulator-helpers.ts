import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { AccessToken, GetTokenOptions, OutgoingMessage, Resource, TokenProvider } from "@m365-mail/core";
import {
  DEMO_PASSWORD,
  type DovecotPart,
  dovecotPart,
  type Emulator,
  findDovecot,
  type MailStore,
  type StartTestEmulatorOptions,
  startTestEmulator,
} from "@m365-mail/emulator";
import MailComposer from "nodemailer/lib/mail-composer";
import { type ImapTransport, type ImapTransportOptions, imapTransport } from "../src/index.js";

/** Dovecot is a Debian package; without it the emulator cannot serve IMAP and these tests skip. */
export const dovecotMissing = !findDovecot();

export interface ImapEmulator {
  emulator: Emulator;
  dovecot: DovecotPart;
  /** The same Maildirs Dovecot serves: delivering here is like mail arriving from outside. */
  store: MailStore;
  host: string;
  port: number;
  cleanup(): Promise<void>;
}

export async function startImapEmulator(options: StartTestEmulatorOptions = {}): Promise<ImapEmulator> {
  const dovecot = dovecotPart();
  const emulator = await startTestEmulator({
    prefix: "m365-imap-transport-",
    ...options,
    parts: [dovecot, ...(options.parts ?? [])],
  });
  const server = dovecot.server;
  if (!server) {
    await emulator.stop();
    throw new Error(`the Dovecot part did not start: ${JSON.stringify(emulator.parts.dovecot)}`);
  }
  return {
    emulator,
    dovecot,
    store: emulator.store,
    host: server.host,
    port: server.imapPort,
    cleanup: () => emulator.stop(),
  };
}

/** A real ROPC token provider signed in against the emulator. */
export function emulatorProvider(emulator: Emulator, username = "support@contoso.com"): TokenProvider {
  return ropcTokenProvider({
    tenantId: emulator.tenantId,
    clientId: emulator.clientId,
    username,
    password: DEMO_PASSWORD,
    cloud: emulator.cloud,
    authorityHost: emulator.authorityHost,
    ca: emulator.caPem,
    engine: "http",
  });
}

/** Counts token requests, or hands out another resource's token (the short-scope mistake). */
export function spyProvider(
  inner: TokenProvider,
  options: { resource?: Resource } = {},
): TokenProvider & { calls: { resource: Resource; forceRefresh: boolean }[] } {
  const calls: { resource: Resource; forceRefresh: boolean }[] = [];
  return {
    kind: "token-provider",
    name: "spy",
    username: inner.username,
    ...(inner.cloud ? { cloud: inner.cloud } : {}),
    calls,
    getAccessToken(resource: Resource, o?: GetTokenOptions): Promise<AccessToken> {
      calls.push({ resource, forceRefresh: o?.forceRefresh ?? false });
      return inner.getAccessToken(options.resource ?? resource, o);
    },
    dispose: () => inner.dispose?.() ?? Promise.resolve(),
  };
}

export function transportFor(
  env: ImapEmulator,
  auth: TokenProvider,
  extra: Partial<ImapTransportOptions> = {},
): ImapTransport {
  return imapTransport({ auth, ca: env.emulator.caPem, timeoutMs: 20_000, ...extra });
}

/** An OutgoingMessage as RFC 5322 bytes (nodemailer's composer, as an SMTP client would send it). */
export async function toMime(message: OutgoingMessage, from = "bob@fabrikam.com"): Promise<Buffer> {
  if (message.raw !== undefined) return Buffer.from(message.raw);
  const list = (v: OutgoingMessage["to"]) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
  const composer = new MailComposer({
    from: (message.from as string | undefined) ?? from,
    to: list(message.to) as never,
    cc: list(message.cc) as never,
    subject: message.subject,
    text: message.text,
    html: message.html,
    headers: message.headers,
    messageId: message.messageId,
    attachments: (message.attachments ?? []).map((a) => ({
      filename: a.filename,
      content: typeof a.content === "string" ? a.content : Buffer.from(a.content),
      ...(a.contentType ? { contentType: a.contentType } : {}),
      ...(a.contentId ? { cid: a.contentId } : {}),
    })),
  });
  return composer.compile().build();
}

/**
 * Delivers a message into a mailbox folder through the emulator's store. While a client has the folder
 * selected, deliver with `seen: true` (straight into cur/): Dovecot may move a file out of new/ before
 * the store has looked at it again, and the store then reports ENOENT for a delivery that happened.
 */
export async function deliver(
  env: ImapEmulator,
  upn: string,
  message: OutgoingMessage,
  folder = "inbox",
  options: { seen?: boolean } = {},
): Promise<void> {
  await env.store.deliver(upn, folder, await toMime(message), options);
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
