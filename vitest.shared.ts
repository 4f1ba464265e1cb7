import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Every test in this repository runs against SOURCES: an import of `@m365-mail/<pkg>` in a test (or in
// the code it loads) resolves to `packages/<pkg>/src/index.ts`, never to a `dist/` that may be older
// than the code beside it. Why, and how tests of a built command stay current: README.md, "Development".
const root = fileURLToPath(new URL(".", import.meta.url));

/** `@m365-mail/<name>` → its `src/index.ts`, for every workspace package that has one. */
export function workspaceSources(): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const folder of ["packages", "tools"]) {
    for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
      const dir = join(root, folder, entry.name);
      const manifest = join(dir, "package.json");
      const source = join(dir, "src", "index.ts");
      if (!entry.isDirectory() || !existsSync(manifest) || !existsSync(source)) continue;
      const { name } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string };
      if (name) aliases[name] = source;
    }
  }
  return aliases;
}
