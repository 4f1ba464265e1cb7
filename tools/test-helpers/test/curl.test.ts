import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { curl, curlSpeaks } from "../src/index.js";

describe.skipIf(!curlSpeaks("file"))("curl", () => {
  it("takes its options from stdin and reports output and exit code", async () => {
    const dir = await mkdtemp(join(tmpdir(), "m365-curl-test-"));
    try {
      await writeFile(join(dir, "note.txt"), "hello from a file\n");
      const ok = await curl([`url = "file://${join(dir, "note.txt")}"`, "silent"].join("\n"));
      expect(ok).toMatchObject({ code: 0, stdout: "hello from a file\n" });
      const missing = await curl(
        [`url = "file://${join(dir, "absent.txt")}"`, "silent", "show-error"].join("\n"),
      );
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).not.toBe("");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says which protocols the installed curl speaks", () => {
    expect(curlSpeaks("no-such-protocol-xyz")).toBe(false);
  });
});
