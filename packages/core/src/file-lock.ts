import { randomBytes } from "node:crypto";
import { open, readFile, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { type SerialQueue, serialQueue } from "./serial-queue.js";

export interface FileLockOptions {
  /** How long to wait for another holder before `onTimeout`. @default 60000 */
  readonly waitMs?: number;
  /**
   * A lock file untouched for this long was left by a process that died holding it, and is taken over.
   * A live holder touches its file every third of this. @default 30000
   */
  readonly staleMs?: number;
  /** The error thrown when `waitMs` passed without the lock. */
  readonly onTimeout: () => Error;
  /** The error thrown when the lock file cannot be created at all (a missing or read-only folder). */
  readonly onFailure?: (cause: unknown) => Error;
}

/** Callers in this process queue here, so only one of them at a time polls the lock file. */
const local = new Map<string, { queue: SerialQueue; users: number }>();

/**
 * Runs `task` while holding `lockPath`, a lock file that every process on every machine sharing the
 * folder respects (created with O_EXCL, removed after). Node has no flock(); a file created exclusively
 * works on local disks and NFS alike (machines sharing it need clocks within `staleMs` of each other:
 * staleness is the file's mtime against this machine's clock). Taking over a stale lock is the one race
 * left: two waiters that both judge the same dead holder's file stale at the same instant may both proceed.
 *
 * ```ts
 * await withFileLock(`${path}.lock`, () => readModifyWrite(path), { onTimeout: () => new Error("busy") });
 * ```
 */
export function withFileLock<T>(
  lockPath: string,
  task: () => Promise<T>,
  options: FileLockOptions,
): Promise<T> {
  let slot = local.get(lockPath);
  if (!slot) {
    slot = { queue: serialQueue(), users: 0 };
    local.set(lockPath, slot);
  }
  const held = slot;
  held.users++;
  return held
    .queue(async () => {
      const staleMs = options.staleMs ?? 30_000;
      const token = await acquire(lockPath, staleMs, Date.now() + (options.waitMs ?? 60_000), options);
      const touch = setInterval(() => {
        const now = new Date();
        utimes(lockPath, now, now).catch(() => undefined);
      }, staleMs / 3);
      touch.unref();
      try {
        return await task();
      } finally {
        clearInterval(touch);
        await release(lockPath, token);
      }
    })
    .finally(() => {
      if (--held.users === 0) local.delete(lockPath);
    });
}

async function acquire(lockPath: string, staleMs: number, deadline: number, options: FileLockOptions) {
  const token = `${hostname()} ${process.pid} ${randomBytes(8).toString("hex")}`;
  let pause = 2;
  for (;;) {
    try {
      const file = await open(lockPath, "wx", 0o600);
      try {
        await file.writeFile(token);
      } catch (error) {
        // A lock file we could not finish (a full disk) must not keep the others waiting.
        await file.close().catch(() => undefined);
        await rm(lockPath, { force: true });
        throw error;
      }
      await file.close();
      return token;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw options.onFailure?.(error) ?? error;
    }
    const info = await stat(lockPath).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > staleMs) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() >= deadline) throw options.onTimeout();
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 50);
  }
}

/** Removes the lock only if it is still ours (a holder paused past staleMs may have lost it). */
async function release(lockPath: string, token: string): Promise<void> {
  const current = await readFile(lockPath, "utf8").catch(() => undefined);
  if (current === token) await rm(lockPath, { force: true });
}
