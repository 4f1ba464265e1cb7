import { defineConfig } from "vitest/config";

// Own config so that `pnpm test` here does not pick up the root's multi-project config.
export default defineConfig({
  test: { include: ["test/**/*.test.ts"] },
});
