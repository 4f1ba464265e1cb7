import { defineConfig } from "vitest/config";

// One run over every package (the README's `npm test`); each package also runs alone with `pnpm test`.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tools/*"],
  },
});
