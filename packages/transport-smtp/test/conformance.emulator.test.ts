import type { Emulator } from "@m365-mail/emulator";
import { runTransportConformance } from "@m365-mail/transport-test-suite";
import { afterAll, beforeAll } from "vitest";
import { smtpTransport } from "../src/index.js";
import { emulatorProvider, startTestEmulator, storeReader, type TestEmulator } from "./helpers.js";

let env: TestEmulator;
beforeAll(async () => {
  env = await startTestEmulator();
});
afterAll(async () => env?.cleanup());

runTransportConformance({
  name: "smtp (emulator)",
  recipient: { address: "alice@contoso.com" },
  createTransport: () =>
    smtpTransport({
      auth: emulatorProvider(env.emulator),
      ca: env.emulator.caPem,
    }),
  // SMTP only sends: the suite looks into alice's Inbox over the emulator's Graph.
  reader: storeReader((): Emulator => env.emulator, "alice@contoso.com"),
  timeoutMs: 15_000,
});
