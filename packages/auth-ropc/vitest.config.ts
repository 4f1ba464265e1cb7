import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Emulator tests start HTTPS servers and run real retries with short back-offs.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
