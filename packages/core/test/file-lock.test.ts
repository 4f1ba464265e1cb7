import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { hostname, tmpdir } from "node:os";
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
const tsx = createRequire(import.meta.url).resolve("tsx");

/** Another process (this module from its sources) that takes `lockPath` and holds it until killed. */
async function holderProcess(lockPath: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", tsx, join(__dirname, "fixtures/lock-holder.ts"), lockPath],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const [line] = (await Promise.race([
    once(child.stdout!, "data"),
    once(child, "exit").then(() => {
      throw new Error("the lock holder exited");
    }),
  ])) as [Buffer];
  expect(line.toString()).toContain("holding");
  return child;
}
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

  it("takes over at once the lock of a process on this machine that was killed holding it", async () => {
    const lock = join(dir, "killed.lock");
    const holder = await holderProcess(lock);
    await expect(
      withFileLock(lock, async () => "never", { waitMs: 300, staleMs: 60_000, onTimeout: busy }),
    ).rejects.toThrow("busy");
    holder.kill("SIGKILL");
    await once(holder, "exit");
    expect(await exists(lock)).toBe(true);
    // Well inside staleMs (a minute) and waitMs: the file names a PID that no longer runs.
    await expect(
      withFileLock(lock, async () => "mine", { waitMs: 5_000, staleMs: 60_000, onTimeout: busy }),
    ).resolves.toBe("mine");
    expect(await exists(lock)).toBe(false);
  }, 30_000);

  it("takes over a lock naming this process's PID that it does not hold (a restarted container's)", async () => {
    const lock = join(dir, "earlier-life.lock");
    let namespace = "-";
    try {
      namespace = readlinkSync("/proc/self/ns/pid");
    } catch {}
    await writeFile(lock, `${hostname()} ${namespace} ${process.pid} 0123456789abcdef`);
    await expect(
      withFileLock(lock, async () => "mine", { waitMs: 1_000, staleMs: 60_000, onTimeout: busy }),
    ).resolves.toBe("mine");
  });

  it("waits for a fresh lock whose holder it cannot check (another machine, an unreadable name)", async () => {
    const lock = join(dir, "elsewhere.lock");
    for (const holder of [`other-host pid:[1] ${process.pid} abc`, `${process.pid}`]) {
      await writeFile(lock, holder);
      await expect(
        withFileLock(lock, async () => "never", { waitMs: 100, staleMs: 10_000, onTimeout: busy }),
      ).rejects.toThrow("busy");
      expect(await readFile(lock, "utf8")).toBe(holder);
    }
    await rm(lock);
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
