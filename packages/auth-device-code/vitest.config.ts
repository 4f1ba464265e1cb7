import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Tests run against the emulator's source, so they do not depend on its build being current.
    alias: { "@m365-mail/emulator": fileURLToPath(new URL("../emulator/src/index.ts", import.meta.url)) },
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Emulator tests start an HTTPS server and run real retries with short back-offs.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
