/**
 * Runs `task` after every task queued before it has settled, so tasks never overlap. A task that fails
 * (rejects or throws) fails only its own call; the next one still runs.
 */
export type SerialQueue = <T>(task: () => T | Promise<T>) => Promise<T>;

/**
 * One-at-a-time task queue, in arrival order. Use it where steps must not interleave: the grants of one
 * user (a rotated refresh token is used once), a file's read-modify-write, the commands of one protocol
 * connection, the turns of a rate limiter.
 *
 * ```ts
 * const serial = serialQueue();
 * await Promise.all([serial(() => write(a)), serial(() => write(b))]); // a, then b
 * ```
 */
export function serialQueue(): SerialQueue {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => T | Promise<T>): Promise<T> => {
    // `task` as both handlers: it runs whether the previous task resolved or rejected.
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}
