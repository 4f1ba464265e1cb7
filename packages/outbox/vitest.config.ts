import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    name: "outbox",
    include: ["test/**/*.test.ts"],
    // Redis and SIGKILL tests start real processes; one file at a time keeps the small machine calm.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
