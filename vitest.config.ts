import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

// One run over every package (the README's `npm test`); each package also runs alone with `pnpm test`.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tools/*"],
    // Vitest's default is one worker fewer than the cores: a single worker on a 2-core machine. These
    // tests mostly wait on servers and child processes, so files run one more at a time than there are
    // cores (every file starts its own emulator, Dovecot and Redis on free ports). On the 2-core
    // development machine this took the suite from 14 to 7 minutes.
    maxWorkers: availableParallelism() + 1,
  },
});
