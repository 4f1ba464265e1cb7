import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "test-helpers",
    include: ["test/**/*.test.ts"],
    // Starting redis-server and running a build command can be slow on a small shared machine.
    testTimeout: 30_000,
  },
});
