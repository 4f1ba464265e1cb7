import { defineConfig } from "tsup";

export default defineConfig([
  {
    // `command`: the CLI's `m365-mail bridge`, without loading the bridge for `status` and `spool`.
    entry: ["src/index.ts", "src/command.ts"],
    format: ["esm", "cjs"],
    dts: true,
    clean: true,
    sourcemap: true,
    target: "node20",
  },
  {
    // The bin: ESM only (top-level await), next to the library build.
    entry: ["src/bin.ts"],
    format: ["esm"],
    sourcemap: true,
    target: "node20",
  },
]);
