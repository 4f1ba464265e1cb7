import { defineConfig } from "tsup";

// An application, not a library: ESM bundles of our own code, dependencies stay in node_modules.
export default defineConfig({
  entry: { main: "src/main.ts", index: "src/index.ts" },
  format: ["esm"],
  dts: false,
  clean: true,
  sourcemap: true,
  target: "node20",
  banner: { js: "#!/usr/bin/env node" },
});
