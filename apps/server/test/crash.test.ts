import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, it } from "vitest";
import { crashScenario } from "./crash-scenario.js";
import { type ServerProcess, startTestEmulator, type TestEmulator } from "./helpers.js";

let emu: TestEmulator;
let dir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  emu = await startTestEmulator();
  dir = await mkdtemp(join(tmpdir(), "m365-server-crash-"));
  // Lifted so that the test measures the outbox, not Outlook's 10-minute request budget.
  emu.graph.setLimits({ requestsPerWindow: 1_000_000 });
});
afterAll(async () => {
  await server?.kill();
  await emu?.stop();
  await rm(dir, { recursive: true, force: true });
});

it("1,000 accepted sends are each delivered exactly once although the server is SIGKILLed twice mid-way", {
  timeout: 150_000,
}, async () => {
  await crashScenario({
    emu,
    env: { OUTBOX_PATH: join(dir, "outbox.db") },
    total: 1000,
    crashAt: [300, 700],
    onServer: (s) => {
      server = s;
    },
  });
});
