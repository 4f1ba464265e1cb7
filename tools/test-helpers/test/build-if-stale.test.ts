import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildIfStale, workspaceDependencies } from "../src/index.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "m365-build-if-stale-"));
  await mkdir(join(root, "src", "nested"), { recursive: true });
  await writeFile(join(root, "src", "nested", "main.ts"), "export {};\n");
});
afterEach(() => rm(root, { recursive: true, force: true }));

// Stands in for tsup: counts its runs in the output file.
const build = [
  process.execPath,
  "-e",
  'const fs=require("node:fs");fs.mkdirSync("dist",{recursive:true});const f="dist/main.js";fs.writeFileSync(f,String(Number(fs.existsSync(f)?fs.readFileSync(f,"utf8"):0)+1))',
] as const;
const runs = async () => Number(await readFile(join(root, "dist", "main.js"), "utf8"));

describe("buildIfStale", () => {
  it("builds when the output is missing, not again while it is newer than every source", async () => {
    expect(buildIfStale({ root, output: "dist/main.js", command: build })).toBe(true);
    expect(existsSync(join(root, "dist", "main.js"))).toBe(true);
    expect(buildIfStale({ root, output: "dist/main.js", command: build })).toBe(false);
    expect(await runs()).toBe(1);
  });

  it("builds again when a source file (in a sub-folder) changed after the build", async () => {
    buildIfStale({ root, output: "dist/main.js", command: build });
    const later = new Date(Date.now() + 60_000);
    await utimes(join(root, "src", "nested", "main.ts"), later, later);
    expect(buildIfStale({ root, output: "dist/main.js", command: build })).toBe(true);
    expect(await runs()).toBe(2);
  });

  it("lets a failing build fail the setup", () => {
    expect(() =>
      buildIfStale({ root, output: "dist/main.js", command: [process.execPath, "-e", "process.exit(3)"] }),
    ).toThrow();
  });

  it("with withWorkspaceDependencies, a change in a workspace dependency's src (even a transitive one) rebuilds", async () => {
    // app → dep (workspace:) → leaf (workspace:); "outside" is a registry dependency and is not followed.
    const app = join(root, "app");
    const dep = join(root, "dep");
    const leaf = join(root, "leaf");
    for (const [dir, deps] of [
      [app, { dep: "workspace:*", outside: "^1.0.0" }],
      [dep, { leaf: "workspace:^" }],
      [leaf, {}],
    ] as const) {
      await mkdir(join(dir, "src"), { recursive: true });
      await mkdir(join(dir, "node_modules"), { recursive: true });
      await writeFile(join(dir, "src", "index.ts"), "export {};\n");
      await writeFile(join(dir, "package.json"), JSON.stringify({ name: dir, dependencies: deps }));
    }
    await symlink(dep, join(app, "node_modules", "dep"));
    await symlink(leaf, join(dep, "node_modules", "leaf"));
    expect(workspaceDependencies(app).sort()).toEqual([dep, leaf].sort());

    const options = { root: app, output: "dist/main.js", command: build, withWorkspaceDependencies: true };
    expect(buildIfStale(options)).toBe(true);
    expect(buildIfStale(options)).toBe(false);
    const later = new Date(Date.now() + 60_000);
    await utimes(join(leaf, "src", "index.ts"), later, later);
    expect(buildIfStale({ ...options, withWorkspaceDependencies: false })).toBe(false);
    expect(buildIfStale(options)).toBe(true);
    expect(Number(await readFile(join(app, "dist", "main.js"), "utf8"))).toBe(2);
  });
});
