#!/usr/bin/env node
// `pnpm bench <name>` runs bench/<name>.ts against the built packages. It first builds every workspace
// package the bench imports (and their dependencies; turbo skips what is current), and stops on a
// failed build: a bench never measures a stale or half-built dist/.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const name = process.argv[2];
const available = readdirSync(new URL("../bench/", import.meta.url))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: pnpm bench <name>   (available: ${available.join(", ") || "none"})`);
  process.exit(2);
}
const file = new URL(`../bench/${name}.ts`, import.meta.url);
// "../packages/<dir>/…" and "../apps/<dir>/…" in the bench name the workspace packages it runs.
const folders = new Set(
  [...readFileSync(file, "utf8").matchAll(/\.\.\/((?:packages|apps)\/[\w-]+)\//g)].map((m) => m[1]),
);
const filters = [...folders].map((folder) => {
  const manifest = JSON.parse(readFileSync(new URL(`../${folder}/package.json`, import.meta.url), "utf8"));
  return `--filter=${manifest.name}...`;
});
console.error(`[bench] building ${[...folders].join(", ") || "everything"}`);
const build = spawnSync("pnpm", ["turbo", "run", "build", "--output-logs=errors-only", ...filters], {
  stdio: "inherit",
});
if (build.status !== 0) {
  console.error(`[bench] the build failed (exit ${build.status ?? build.signal}): not running ${name}`);
  process.exit(build.status || 1);
}
const result = spawnSync("pnpm", ["exec", "tsx", file.pathname, ...process.argv.slice(3)], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
