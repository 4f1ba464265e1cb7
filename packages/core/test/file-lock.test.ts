import { mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withFileLock } from "../src/file-lock.js";

// Across processes: packages/auth-ropc/test/file-token-cache.test.ts (four writers, three sign-ins) and
// packages/bridge/test/tls-material.test.ts (three bridges starting at once).
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "core-file-lock-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const busy = () => new Error("busy");
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

describe("withFileLock", () => {
  it("runs one task at a time, holds the file while it runs, and removes it after, also after a failure", async () => {
    const lock = join(dir, "a.lock");
    let inside = 0;
    let most = 0;
    const task = async () => {
      inside++;
      most = Math.max(most, inside);
      expect(await exists(lock)).toBe(true);
      await new Promise((r) => setTimeout(r, 10));
      inside--;
    };
    await Promise.all([0, 1, 2, 3].map(() => withFileLock(lock, task, { onTimeout: busy })));
    expect(most).toBe(1);
    expect(await exists(lock)).toBe(false);
    await expect(
      withFileLock(lock, async () => Promise.reject(new Error("boom")), { onTimeout: busy }),
    ).rejects.toThrow("boom");
    expect(await exists(lock)).toBe(false);
  });

  it("takes over a file untouched for staleMs, waits for a fresh one until waitMs, then onTimeout", async () => {
    const lock = join(dir, "b.lock");
    await writeFile(lock, "a process that died");
    const old = new Date(Date.now() - 5_000);
    await utimes(lock, old, old);
    await expect(withFileLock(lock, async () => "mine", { staleMs: 1_000, onTimeout: busy })).resolves.toBe(
      "mine",
    );

    await writeFile(lock, "a live holder");
    await expect(
      withFileLock(lock, async () => "never", { waitMs: 100, staleMs: 10_000, onTimeout: busy }),
    ).rejects.toThrow("busy");
    expect(await readFile(lock, "utf8")).toBe("a live holder");
  });

  it("leaves a lock that another holder took over (this one was paused past staleMs) in place", async () => {
    const lock = join(dir, "c.lock");
    await withFileLock(
      lock,
      async () => {
        await writeFile(lock, "the holder that took it over");
      },
      { onTimeout: busy },
    );
    expect(await readFile(lock, "utf8")).toBe("the holder that took it over");
  });

  it("reports a lock file it cannot create through onFailure", async () => {
    await writeFile(join(dir, "a-file"), "");
    const failure = withFileLock(join(dir, "a-file", "x.lock"), async () => "never", {
      onTimeout: busy,
      onFailure: (cause) => new Error(`cannot lock: ${(cause as NodeJS.ErrnoException).code}`),
    });
    await expect(failure).rejects.toThrow("cannot lock: ENOTDIR");
  });
});
