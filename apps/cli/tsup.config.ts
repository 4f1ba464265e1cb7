import { defineConfig } from "tsup";

// A command, not a library: one ESM bundle of our own code, dependencies stay in node_modules.
export default defineConfig({
  entry: { cli: "src/cli.ts" },
  format: ["esm"],
  dts: false,
  clean: true,
  sourcemap: true,
  target: "node20",
  banner: { js: "#!/usr/bin/env node" },
});
