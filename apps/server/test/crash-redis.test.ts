import { randomBytes } from "node:crypto";
import { startRedis, type TestRedis } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, it } from "vitest";
import { crashScenario } from "./crash-scenario.js";
import { hasRedis, type ServerProcess, startTestEmulator, type TestEmulator } from "./helpers.js";

// Without Redis this skips locally and fails in CI (needs()).
const withRedis = hasRedis();
let emu: TestEmulator;
let redis: TestRedis;
let server: ServerProcess | undefined;

beforeAll(async () => {
  if (!withRedis) return;
  [emu, redis] = await Promise.all([startTestEmulator(), startRedis()]);
  // Lifted so that the test measures the outbox, not Outlook's 10-minute request budget.
  emu.graph.setLimits({ requestsPerWindow: 1_000_000 });
});
afterAll(async () => {
  await server?.kill();
  await redis?.stop();
  await emu?.stop();
});

// Fewer sends than the SQLite test: BullMQ costs more Redis round trips per message on a small machine.
it.skipIf(!withRedis)(
  "OUTBOX=redis: 400 accepted sends are each delivered exactly once although the server is SIGKILLed twice mid-way",
  { timeout: 150_000 },
  async () => {
    await crashScenario({
      emu,
      env: {
        OUTBOX: "redis",
        REDIS_URL: redis.url,
        // With REDIS_URL the token cache is in Redis too: the restarted process reuses the sign-in.
        M365_CACHE_KEY: randomBytes(32).toString("base64"),
        // A killed process's jobs are taken over by the restarted one within about twice this.
        OUTBOX_REDIS_LOCK_MS: "2000",
      },
      total: 400,
      crashAt: [120, 280],
      onServer: (s) => {
        server = s;
      },
    });
  },
);
