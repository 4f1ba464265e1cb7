import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    name: "test-helpers",
    include: ["test/**/*.test.ts"],
    // Files share a worker and its loaded modules: none needs a fresh module state (README.md, "Development").
    isolate: false,
    // Starting redis-server and running a build command can be slow on a small shared machine.
    testTimeout: 30_000,
  },
});
