import { runTransportConformance } from "@m365-mail/transport-test-suite";
import { afterAll, beforeAll, describe } from "vitest";
import {
  deliver,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

describe.skipIf(dovecotMissing)("imap transport against the emulator's Dovecot", () => {
  let env: ImapEmulator;
  beforeAll(async () => {
    env = await startImapEmulator();
  });
  afterAll(() => env?.cleanup());

  runTransportConformance({
    name: "imap (emulator + Dovecot)",
    recipient: { address: "support@contoso.com" },
    createTransport: () => transportFor(env, emulatorProvider(env.emulator)),
    // IMAP cannot send: mail arrives through the emulator's store, as if from outside.
    sender: { send: (message) => deliver(env, "support@contoso.com", message) },
    timeoutMs: 20_000,
  });
});
