import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "bridge",
    include: ["test/**/*.test.ts"],
    // Integration tests start the emulator, Dovecot and real legacy clients; one file at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
