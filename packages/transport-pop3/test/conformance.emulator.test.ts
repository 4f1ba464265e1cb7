/**
 * The shared transport conformance suite, run against the emulator's Dovecot. POP3 cannot send, so the
 * suite's messages are put into the Inbox through the emulator's mail store (as if they had arrived).
 */
import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import type { AddressInput, OutgoingMessage } from "@m365-mail/core";
import {
  DEMO_PASSWORD,
  dovecotPart,
  findDovecot,
  type MailStore,
  startTestEmulator,
  type TestEmulator,
} from "@m365-mail/emulator";
import { runTransportConformance } from "@m365-mail/transport-test-suite";
import MailComposer from "nodemailer/lib/mail-composer";
import { afterAll, beforeAll, describe } from "vitest";
import { pop3Transport } from "../src/index.js";

const SUPPORT = "support@contoso.com";
const dovecotMissing = !findDovecot();

let emulator: TestEmulator;
let store: MailStore;

const list = (value: AddressInput | AddressInput[] | undefined) =>
  value === undefined
    ? undefined
    : (Array.isArray(value) ? value : [value]).map((a) => (typeof a === "string" ? a : a));

/** An OutgoingMessage as the RFC 5322 bytes an SMTP client would have delivered. */
function toMime(message: OutgoingMessage): Promise<Buffer> {
  if (message.raw !== undefined) return Promise.resolve(Buffer.from(message.raw));
  const composer = new MailComposer({
    from: (message.from as string | undefined) ?? "bob@fabrikam.com",
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

describe.skipIf(dovecotMissing)("conformance", () => {
  beforeAll(async () => {
    emulator = await startTestEmulator({ prefix: "m365-pop3-conformance-", parts: [dovecotPart()] });
    store = emulator.store;
  });
  afterAll(() => emulator?.stop());

  runTransportConformance({
    name: "pop3 (emulator)",
    recipient: { address: SUPPORT },
    createTransport: () =>
      pop3Transport({
        auth: ropcTokenProvider({
          tenantId: emulator.tenantId,
          clientId: emulator.clientId,
          username: SUPPORT,
          password: DEMO_PASSWORD,
          cloud: emulator.cloud,
          authorityHost: emulator.authorityHost,
          ca: emulator.caPem,
          engine: "http",
        }),
        ca: emulator.caPem,
        timeoutMs: 20_000,
      }),
    sender: { send: async (message) => store.deliver(SUPPORT, "inbox", await toMime(message)) },
    timeoutMs: 20_000,
  });
});
