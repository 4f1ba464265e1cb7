import { M365MailError } from "@m365-mail/core";

/** Counts requests in flight; Outlook refuses a 5th concurrent request per mailbox with 429. */
export interface Semaphore {
  /** Resolves with a release function once a slot is free. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  readonly active: number;
  readonly waiting: number;
}

export function createSemaphore(limit: number): Semaphore {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `maxConcurrency must be a positive integer, got ${String(limit)}`,
      {
        source: "graph",
        hint: "Use 4, Outlook's limit of concurrent requests per mailbox, or less.",
      },
    );
  }
  let active = 0;
  const queue: Array<() => void> = [];

  const releaser = (): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = queue.shift();
      // Hand the slot straight to the next waiter so that no newcomer can overtake it.
      if (next) next();
      else active--;
    };
  };

  return {
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(abortError(signal));
      if (active < limit) {
        active++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(releaser());
        };
        const onAbort = () => {
          const index = queue.indexOf(grant);
          if (index >= 0) queue.splice(index, 1);
          reject(abortError(signal));
        };
        queue.push(grant);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
  };
}

function abortError(signal: AbortSignal | undefined): M365MailError {
  // The request never left: a send aborted here was certainly not sent.
  return new M365MailError(
    "ABORTED",
    "the operation was aborted while waiting for a free request slot; the request was not sent",
    { source: "graph", cause: signal?.reason, requestSent: false },
  );
}
