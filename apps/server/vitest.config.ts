import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    name: "server",
    include: ["test/**/*.test.ts"],
    // Files share a worker and its loaded modules: none needs a fresh module state (README.md, "Development").
    isolate: false,
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
