/** Messages per FETCH of a listing unless the caller chose a size (`pageSize`, `fetchBatchSize`). */
export const DEFAULT_BATCH = 200;
/** Largest FETCH a listing grows to on a slow link. */
export const MAX_BATCH = 1000;
/** With `includeSource`, a batch holds about this many bytes of sources at most (two batches are held at a time). */
export const SOURCE_BATCH_BYTES = 8 * 1024 * 1024;
/** A batch grows when the server took longer than this share of the batch's time to send its first message. */
export const GROW_WHEN_WAITING = 0.2;

/** What one FETCH of a listing took. */
export interface BatchTiming {
  /** Messages asked for and messages received. */
  readonly asked: number;
  readonly received: number;
  /** Bytes of sources received (0 without `includeSource`). */
  readonly sourceBytes: number;
  /** From sending the FETCH to its first message, and to its end. */
  readonly waitMs: number;
  readonly totalMs: number;
}

/**
 * How many messages the next FETCH of a listing asks for. imapflow sends one command at a time, so
 * every FETCH costs a round trip in which nothing arrives. On a LAN that is about a millisecond per 200
 * messages, and larger batches would cost more than they save (more of them stay in memory across
 * garbage collections); against Exchange Online it is a WAN round trip. So batches start at 200 and
 * double, up to 1,000, while the wait for the first message is more than a fifth of a batch's time.
 * With sources, a batch is also kept to about 8 MB of them (measured on the batches so far). A size
 * the caller chose is kept as it is.
 */
export class BatchSizer {
  private readonly fixed: number | undefined;
  private size: number;
  private messages = 0;
  private bytes = 0;

  constructor(
    chosen: number | undefined,
    private readonly includeSource: boolean,
  ) {
    // A page size below 1 would fetch nothing forever.
    this.fixed =
      chosen === undefined || !Number.isFinite(chosen) ? undefined : Math.max(1, Math.floor(chosen));
    this.size = this.fixed ?? DEFAULT_BATCH;
  }

  next(): number {
    return this.size;
  }

  observe(batch: BatchTiming): void {
    if (this.fixed !== undefined) return;
    this.messages += batch.received;
    this.bytes += batch.sourceBytes;
    let size = this.size;
    // Only a full batch says something about the link (a short last batch ends early).
    if (batch.received >= batch.asked && batch.waitMs > GROW_WHEN_WAITING * batch.totalMs) {
      size = Math.min(MAX_BATCH, size * 2);
    }
    if (this.includeSource && this.messages > 0 && this.bytes > 0) {
      size = Math.min(size, Math.max(1, Math.floor(SOURCE_BATCH_BYTES / (this.bytes / this.messages))));
    }
    this.size = size;
  }
}

/**
 * The next window of message sequence numbers when a whole folder is listed newest first without a
 * SEARCH. `cursor` is the lowest sequence number fetched so far (`exists + 1` at the start): every
 * message not fetched yet sits below it, and stays below it whatever happens between two FETCHes —
 * an expunge only moves messages down, new mail is added at the top, and a new connection numbers
 * the same messages the same way or lower. So the window is the `count` numbers below the cursor
 * (never above `exists`); a message the window meets again because it moved down has a UID at or
 * above the lowest one already listed, and the caller skips it. `undefined` when nothing is left.
 */
export function sequenceWindow(
  cursor: number,
  exists: number,
  count: number,
): { from: number; to: number } | undefined {
  const to = Math.min(cursor - 1, exists);
  if (to < 1 || count < 1) return undefined;
  return { from: Math.max(1, to - count + 1), to };
}
