#!/usr/bin/env node
// Type-checks every ```ts block of the READMEs against the packages' built types, so an example cannot
// drift from the API it shows. Each block is its own module (top-level await allowed). A fragment (it
// uses names the text around it defines) has those names as TypeScript in an HTML comment on the line
// before its fence, invisible on GitHub:
//   <!-- example-context: declare const graph: import("@m365-mail/transport-graph").GraphTransport; -->
// It is put on the block's first line, so tsc's line numbers stay the README's (the header names the
// line the block starts at). Exit 0 when all compile, 1 with tsc's errors.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "node_modules", ".readme-examples");
const readmes = [
  "README.md",
  ...["packages", "apps"].flatMap((dir) =>
    readdirSync(join(root, dir)).map((name) => join(dir, name, "README.md")),
  ),
].filter((path) => {
  try {
    readFileSync(join(root, path));
    return true;
  } catch {
    return false;
  }
});

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const files = [];
const origin = new Map(); // generated file → the README and the line its block starts at
for (const readme of readmes) {
  const lines = readFileSync(join(root, readme), "utf8").split("\n");
  let block;
  let start = 0;
  lines.forEach((line, index) => {
    if (block === undefined && /^```ts\s*$/.test(line)) {
      block = [];
      start = index + 2;
    } else if (block !== undefined && /^```\s*$/.test(line)) {
      const name = `${readme.replace(/[/.]/g, "_")}_L${start}.ts`;
      // What the text around a fragment defines, as TypeScript on the line before its fence.
      const context = /^<!-- example-context: (.+) -->$/.exec(lines[start - 3] ?? "")?.[1] ?? "";
      // The header keeps line numbers: tsc's errors point at the README's own lines (start + n).
      writeFileSync(join(out, name), `// ${readme}:${start}\n${context}${block.join("\n")}\nexport {};\n`);
      files.push(name);
      origin.set(name, { readme, start });
      block = undefined;
    } else if (block !== undefined) {
      block.push(line);
    }
  });
}

const sources = {};
for (const dir of ["packages", "apps"]) {
  for (const name of readdirSync(join(root, dir))) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, dir, name, "package.json"), "utf8"));
      if (!pkg.private) sources[pkg.name] = [relative(out, join(root, dir, name, "dist", "index.d.ts"))];
    } catch {}
  }
}
writeFileSync(
  join(out, "tsconfig.json"),
  JSON.stringify({
    extends: relative(out, join(root, "tsconfig.base.json")),
    compilerOptions: {
      noEmit: true,
      module: "ESNext",
      moduleResolution: "Bundler",
      allowImportingTsExtensions: true,
      noUnusedLocals: false,
      baseUrl: ".",
      // Our packages as built (their public types); everything else from pnpm's store of the
      // workspace's dependencies, DefinitelyTyped first.
      paths: {
        ...sources,
        "*": ["@types/*", "*"].map((p) =>
          relative(out, join(root, "node_modules", ".pnpm", "node_modules", p)),
        ),
      },
      types: ["node"],
      typeRoots: [relative(out, join(root, "node_modules", "@types"))],
    },
    files,
  }),
);
try {
  execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", out], { stdio: "pipe" });
  console.log(`[readme-examples] ${files.length} TypeScript examples in ${readmes.length} READMEs compile`);
} catch (error) {
  // tsc's positions, as README lines: line 2 of a generated file is the block's first line.
  const report = String(error.stdout || error.message).replace(
    /node_modules\/\.readme-examples\/([^(\s]+\.ts)\((\d+),(\d+)\)/g,
    (whole, name, line) => {
      const at = origin.get(name);
      return at ? `${at.readme}:${at.start + Number(line) - 2}` : whole;
    },
  );
  console.error(`[readme-examples] a README example does not compile:\n${report}`);
  process.exit(1);
}
