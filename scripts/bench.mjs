#!/usr/bin/env node
// `pnpm bench <name>` runs bench/<name>.ts against the built packages.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const name = process.argv[2];
const available = readdirSync(new URL("../bench/", import.meta.url))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: pnpm bench <name>   (available: ${available.join(", ") || "none"})`);
  process.exit(2);
}
if (!existsSync(new URL("../packages/core/dist/index.js", import.meta.url))) {
  console.error("[bench] building packages first (pnpm build)");
  spawnSync("pnpm", ["build"], { stdio: "inherit" });
}
const file = new URL(`../bench/${name}.ts`, import.meta.url).pathname;
const result = spawnSync("pnpm", ["exec", "tsx", file, ...process.argv.slice(3)], { stdio: "inherit" });
process.exit(result.status ?? 1);
