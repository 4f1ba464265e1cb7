import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    name: "outbox",
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
