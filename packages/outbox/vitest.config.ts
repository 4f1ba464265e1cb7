import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "outbox",
    include: ["test/**/*.test.ts"],
    // Redis and SIGKILL tests start real processes; one file at a time keeps the small machine calm.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
