import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

// Own config so that `pnpm test` here does not pick up the root's multi-project config.
export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    include: ["test/**/*.test.ts"],
    // Files share a worker and its loaded modules: none needs a fresh module state (README.md, "Development").
    isolate: false,
    // Starting an emulator creates RSA keys: allow a slow, shared machine.
    hookTimeout: 60_000,
    testTimeout: 30_000,
  },
});
