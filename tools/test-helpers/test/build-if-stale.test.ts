import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildIfStale } from "../src/index.js";

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
});
