import { M365MailError, serialQueue } from "@m365-mail/core";
import { SOURCE } from "./smtp-errors.js";

interface Slot {
  /** When the submission finished; undefined while it is in flight. */
  end?: number;
}

/**
 * At most `limit` submissions in any `windowMs`, counted from when each submission *finished* (the
 * server counts a message when it accepts it, which is later than when we start sending). Callers
 * over the limit wait, in arrival order; nothing fails. A limit of 0 or Infinity turns it off.
 */
export class MessageRateLimiter {
  private slots: Slot[] = [];
  // The next caller waits for this one to get its slot (or give up), not for its message.
  private readonly turns = serialQueue();
  private wakers = new Set<() => void>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.limit > 0 && Number.isFinite(this.limit);
  }

  /** Waits for room and takes a slot; call the returned function when the submission ends. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (!this.enabled) return Promise.resolve(() => {});
    return this.turns(() => this.waitForSlot(signal));
  }

  /** Submissions counted in the current window (in flight or finished within it). */
  inWindow(): number {
    this.prune();
    return this.slots.length;
  }

  private prune(): void {
    const oldest = this.now() - this.windowMs;
    this.slots = this.slots.filter((s) => s.end === undefined || s.end > oldest);
  }

  private async waitForSlot(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      if (signal?.aborted) throw aborted(signal);
      this.prune();
      if (this.slots.length < this.limit) {
        const slot: Slot = {};
        this.slots.push(slot);
        return () => {
          slot.end ??= this.now();
          this.wake();
        };
      }
      const now = this.now();
      const ends = this.slots.filter((s) => s.end !== undefined).map((s) => s.end! + this.windowMs - now);
      // All slots in flight: wait for one to finish; else for the oldest to leave the window.
      await this.sleep(ends.length > 0 ? Math.max(1, Math.min(...ends)) : undefined, signal);
    }
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  private sleep(ms: number | undefined, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        this.wakers.delete(done);
        signal?.removeEventListener("abort", onAbort);
      };
      const done = () => {
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(aborted(signal!));
      };
      if (ms !== undefined) timer = setTimeout(done, ms);
      this.wakers.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** An abort while waiting (for the rate limit, or to retry): this wait sent nothing. */
export function aborted(signal: AbortSignal): M365MailError {
  return new M365MailError("ABORTED", "the send was aborted before it reached Exchange", {
    source: SOURCE,
    cause: signal.reason,
    requestSent: false,
  });
}
