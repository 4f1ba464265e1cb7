import { runTransportConformance } from "@m365-mail/transport-test-suite";
import { afterAll, beforeAll } from "vitest";
import { type EmulatorFixture, SUPPORT, startGraphEmulator } from "./emulator-helpers.js";

let fixture: EmulatorFixture;
beforeAll(async () => {
  fixture = await startGraphEmulator();
});
afterAll(async () => {
  await fixture?.stop();
});

runTransportConformance({
  name: "graph (emulator)",
  recipient: { address: SUPPORT },
  createTransport: () => fixture.transport(),
  timeoutMs: 15_000,
});
