import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export interface BuildIfStaleOptions {
  /** The package folder. */
  root: string;
  /** The built file the tests run, relative to `root`, e.g. "dist/cli.js". */
  output: string;
  /** @default ["pnpm", "exec", "tsup"] */
  command?: readonly [string, ...string[]];
}

/**
 * For tests that run a package's BUILT entry point as a user would (a vitest globalSetup): builds it
 * first when anything under `src/` is newer than the output. Returns whether it built.
 */
export function buildIfStale(options: BuildIfStaleOptions): boolean {
  const bin = join(options.root, options.output);
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
      ),
    );
  if (existsSync(bin) && statSync(bin).mtimeMs >= newest(join(options.root, "src"))) return false;
  const [command, ...args] = options.command ?? ["pnpm", "exec", "tsup"];
  execFileSync(command, args, { cwd: options.root, stdio: "inherit" });
  return true;
}
