import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Own config so that `pnpm test` here does not pick up the root's multi-project config.
export default defineConfig({
  resolve: {
    // Tests run against the sources of the sibling packages, not their builds.
    alias: {
      "@m365-mail/auth-ropc": fileURLToPath(new URL("../auth-ropc/src/index.ts", import.meta.url)),
      "@m365-mail/emulator": fileURLToPath(new URL("../emulator/src/index.ts", import.meta.url)),
      "@m365-mail/transport-test-suite": fileURLToPath(
        new URL("../transport-test-suite/src/index.ts", import.meta.url),
      ),
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Emulator tests create keys and run real retries: allow a slow, shared machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
