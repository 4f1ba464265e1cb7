import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";

export interface BuildIfStaleOptions {
  /** The package folder. */
  root: string;
  /** The built file the tests run, relative to `root`, e.g. "dist/cli.js". */
  output: string;
  /**
   * Also count the `src/` of every workspace package `root` depends on (`workspace:` versions, followed
   * through their own dependencies): the built command loads their builds at run time, so a change there
   * makes it stale too. Use a `command` that builds them as well (`workspaceBuildCommand`).
   * @default false
   */
  withWorkspaceDependencies?: boolean;
  /** @default ["pnpm", "exec", "tsup"] */
  command?: readonly [string, ...string[]];
}

/**
 * For tests that run a package's BUILT entry point as a user would (a vitest globalSetup): builds it
 * first when anything under `src/` (its own, and with `withWorkspaceDependencies` its workspace
 * dependencies') is newer than the output. Returns whether it built. A failed build fails the setup.
 */
export function buildIfStale(options: BuildIfStaleOptions): boolean {
  const bin = join(options.root, options.output);
  const folders = [
    options.root,
    ...(options.withWorkspaceDependencies ? workspaceDependencies(options.root) : []),
  ];
  const newestSource = Math.max(...folders.map((folder) => newest(join(folder, "src"))));
  if (existsSync(bin) && statSync(bin).mtimeMs >= newestSource) return false;
  const [command, ...args] = options.command ?? ["pnpm", "exec", "tsup"];
  execFileSync(command, args, { cwd: options.root, stdio: "inherit" });
  return true;
}

/** Builds a package and every workspace package it depends on; turbo skips what is already current. */
export function workspaceBuildCommand(packageName: string): [string, ...string[]] {
  return ["pnpm", "turbo", "run", "build", `--filter=${packageName}...`, "--output-logs=errors-only"];
}

function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  return Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
      entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
    ),
  );
}

/** The folders of the workspace packages `root` depends on, directly or through each other. */
export function workspaceDependencies(root: string): string[] {
  const found = new Set<string>();
  const visit = (dir: string) => {
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
      if (!version.startsWith("workspace:")) continue;
      const folder = realpathSync(join(dir, "node_modules", name));
      if (found.has(folder)) continue;
      found.add(folder);
      visit(folder);
    }
  };
  visit(root);
  return [...found];
}
