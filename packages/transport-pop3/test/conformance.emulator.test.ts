/**
 * The shared transport conformance suite, run against the emulator's Dovecot. POP3 cannot send, so the
 * suite's messages are put into the Inbox through the emulator's mail store (as if they had arrived).
 */
import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import {
  dovecotPart,
  findDovecot,
  type MailStore,
  startTestEmulator,
  type TestEmulator,
  tokenProviderOptions,
} from "@m365-mail/emulator";
import { needs, toMime } from "@m365-mail/test-helpers";
import { runTransportConformance } from "@m365-mail/transport-test-suite";
import { afterAll, beforeAll, describe } from "vitest";
import { pop3Transport } from "../src/index.js";

const SUPPORT = "support@contoso.com";
// In CI a missing Dovecot fails this file with the install command; locally the suite skips.
const dovecotMissing = !needs("dovecot", () => findDovecot() !== undefined);

let emulator: TestEmulator;
let store: MailStore;

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
        auth: ropcTokenProvider({ ...tokenProviderOptions(emulator, SUPPORT), engine: "http" }),
        ca: emulator.caPem,
        timeoutMs: 20_000,
      }),
    sender: { send: async (message) => store.deliver(SUPPORT, "inbox", await toMime(message)) },
    timeoutMs: 20_000,
  });
});
