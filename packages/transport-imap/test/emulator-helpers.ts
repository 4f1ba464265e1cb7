import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { OutgoingMessage, TokenProvider } from "@m365-mail/core";
import {
  type DovecotPart,
  dovecotPart,
  type Emulator,
  findDovecot,
  type MailStore,
  type StartTestEmulatorOptions,
  startTestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { needs, toMime } from "@m365-mail/test-helpers";
import { type ImapTransport, type ImapTransportOptions, imapTransport } from "../src/index.js";

export { spyProvider, toMime } from "@m365-mail/test-helpers";

/**
 * Dovecot is a Debian package; without it the emulator cannot serve IMAP: in CI that fails the run with
 * the install command, locally these tests skip with a notice.
 */
export const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);

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
  return ropcTokenProvider({ ...tokenProviderOptions(emulator, username), engine: "http" });
}

export function transportFor(
  env: ImapEmulator,
  auth: TokenProvider,
  extra: Partial<ImapTransportOptions> = {},
): ImapTransport {
  return imapTransport({ auth, ca: env.emulator.caPem, timeoutMs: 20_000, ...extra });
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
