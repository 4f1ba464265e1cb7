import { defineConfig } from "vitest/config";
import { workspaceSources } from "../../vitest.shared.js";

export default defineConfig({
  // Tests run against the sources of every workspace package (README.md, "Development").
  resolve: { alias: workspaceSources() },
  test: {
    include: ["test/**/*.test.ts"],
    // Emulator tests start an HTTPS server and run real retries with short back-offs.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
