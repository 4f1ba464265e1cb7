import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

// Crash and scale-out tests run the BUILT server as a user would: build it first when src/ is newer than dist/.
export default function setup(): void {
  const root = join(import.meta.dirname, "..");
  const bin = join(root, "dist", "main.js");
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
      ),
    );
  if (!existsSync(bin) || statSync(bin).mtimeMs < newest(join(root, "src"))) {
    execFileSync("pnpm", ["exec", "tsup"], { cwd: root, stdio: "inherit" });
  }
}
