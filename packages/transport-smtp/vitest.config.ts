import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const source = (pkg: string) => fileURLToPath(new URL(`../${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sibling packages' source, so they do not depend on their builds being current.
    alias: {
      "@m365-mail/emulator": source("emulator"),
      "@m365-mail/auth-ropc": source("auth-ropc"),
      "@m365-mail/transport-test-suite": source("transport-test-suite"),
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Emulator tests start HTTPS and SMTP servers (RSA keys on first start) on a shared machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
