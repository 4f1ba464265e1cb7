import { randomBytes } from "node:crypto";
import { readlinkSync } from "node:fs";
import { open, readFile, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { type SerialQueue, serialQueue } from "./serial-queue.js";

export interface FileLockOptions {
  /** How long to wait for another holder before `onTimeout`. @default 60000 */
  readonly waitMs?: number;
  /**
   * A lock file untouched for this long was left by a process that died holding it, and is taken over.
   * A live holder touches its file every third of this. A holder on this machine (same host name and
   * process namespace) that is no longer running is taken over at once, without waiting. @default 30000
   */
  readonly staleMs?: number;
  /** The error thrown when `waitMs` passed without the lock. */
  readonly onTimeout: () => Error;
  /** The error thrown when the lock file cannot be created at all (a missing or read-only folder). */
  readonly onFailure?: (cause: unknown) => Error;
}

/** Callers in this process queue here, so only one of them at a time polls the lock file. */
const local = new Map<string, { queue: SerialQueue; users: number }>();
/** The lock files' contents this process holds now, shared by every copy of this module it loaded. */
const heldInThisProcess = sharedInThisProcess(Symbol.for("m365-mail.heldFileLocks"));

function sharedInThisProcess(key: symbol): Set<string> {
  const slots = globalThis as Record<symbol, Set<string> | undefined>;
  const set = slots[key] ?? new Set<string>();
  slots[key] = set;
  return set;
}

/**
 * Runs `task` while holding `lockPath`, a lock file that every process on every machine sharing the
 * folder respects (created with O_EXCL, removed after). Node has no flock(); a file created exclusively
 * works on local disks and NFS alike (machines sharing it need clocks within `staleMs` of each other:
 * staleness is the file's mtime against this machine's clock). The file names its holder (host, process
 * namespace, pid), so a holder on this machine that crashed is seen dead at once instead of after
 * `staleMs`. Taking over a dead holder's lock is the one race left: two waiters that judge the same dead
 * holder's file at the same instant may both proceed.
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
      const token = `${HOLDER_PLACE} ${process.pid} ${randomBytes(8).toString("hex")}`;
      // Marked ours before the file exists, so no copy of this module here ever judges it a dead one's.
      heldInThisProcess.add(token);
      try {
        await acquire(lockPath, token, staleMs, Date.now() + (options.waitMs ?? 60_000), options);
      } catch (error) {
        heldInThisProcess.delete(token);
        throw error;
      }
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
        heldInThisProcess.delete(token);
      }
    })
    .finally(() => {
      if (--held.users === 0) local.delete(lockPath);
    });
}

/**
 * Who this process is, as a lock file records it: host name and PID namespace (containers on one host may
 * share a host name, and their PIDs mean nothing to each other), then the PID.
 */
const HOLDER_PLACE = `${hostname()} ${pidNamespace()}`;

function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid"); // e.g. "pid:[4026531836]"
  } catch {
    return "-"; // not Linux: one PID space per host
  }
}

/** True when the lock file names a holder on this machine that is no longer running. */
function holderIsGone(content: string): boolean {
  const [host, namespace, pid] = content.split(" ");
  if (`${host} ${namespace}` !== HOLDER_PLACE || !/^\d+$/.test(pid ?? "")) return false;
  // Our own PID: a previous incarnation's (a restarted container), unless this process holds it (through
  // another copy of this module, whose callers do not queue with ours).
  if (Number(pid) === process.pid) return !heldInThisProcess.has(content);
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    // EPERM: running, as another user.
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

async function acquire(
  lockPath: string,
  token: string,
  staleMs: number,
  deadline: number,
  options: FileLockOptions,
): Promise<void> {
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
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw options.onFailure?.(error) ?? error;
    }
    const info = await stat(lockPath).catch(() => undefined);
    const holder = info ? await readFile(lockPath, "utf8").catch(() => "") : "";
    if (info && (Date.now() - info.mtimeMs > staleMs || holderIsGone(holder))) {
      // Unless another waiter took it over meanwhile (it wrote its own name).
      if ((await readFile(lockPath, "utf8").catch(() => "")) === holder) await rm(lockPath, { force: true });
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
