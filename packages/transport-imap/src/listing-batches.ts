import type { FetchMessageObject } from "imapflow";
import { toDate, type Writable } from "./summary.js";

/** The largest FETCH a listing grows to. */
export const MAX_LISTING_BATCH = 1000;
/** With sources, a listing's FETCH brings about this many bytes of them at most (two are held at once). */
export const LISTING_SOURCE_BYTES = 16 * 1024 * 1024;

/**
 * How many messages the next FETCH of a listing asks for. imapflow sends one command at a time, so each
 * FETCH costs a round trip in which nothing arrives: about 1.5 ms against a local Dovecot, a WAN round
 * trip against Exchange Online. So a listing starts with a small FETCH (the first messages come quickly;
 * a caller may stop early) and makes each next one four times larger, up to 1,000 messages; with sources,
 * also to about 16 MB of them, judged by the average size of the messages fetched so far.
 */
export function nextBatchSize(current: number, averageSourceBytes?: number): number {
  let next = Math.max(current, Math.min(MAX_LISTING_BATCH, current * 4));
  if (averageSourceBytes && averageSourceBytes > 0) {
    next = Math.min(next, Math.max(1, Math.floor(LISTING_SOURCE_BYTES / averageSourceBytes)));
  }
  return next;
}

/**
 * A batch of FETCH responses held until it is complete (a listing yields newest first; servers answer
 * oldest first): only what summaryBuilder reads, as plain numbers where it can — UIDs, sizes and dates in
 * number arrays, flags as one shared array per distinct set — so that with sources the only object held
 * per message is its source. Held objects survive young-generation collections; what holding the batch
 * this way instead of as built summaries did to bench/imap-fetch.ts: transport-imap README, "Listing speed".
 */
export class HeldBatch {
  private readonly uids: number[] = [];
  private readonly sizes: number[] = [];
  /** INTERNALDATE as epoch milliseconds; NaN when the server sent none. */
  private readonly dates: number[] = [];
  private readonly flags: (readonly string[])[] = [];
  private readonly sources: (Buffer | undefined)[] = [];
  /** Without sources: ENVELOPE and BODYSTRUCTURE (small next to a source), by message. */
  private readonly structure: [FetchMessageObject["envelope"], FetchMessageObject["bodyStructure"]][] = [];
  private readonly flagSets = new Map<string, readonly string[]>();

  get length(): number {
    return this.uids.length;
  }

  push(message: FetchMessageObject): void {
    this.uids.push(message.uid);
    this.sizes.push(message.size ?? -1);
    this.dates.push(toDate(message.internalDate)?.getTime() ?? Number.NaN);
    this.flags.push(this.shared(message.flags));
    this.sources.push(message.source);
    if (message.envelope || message.bodyStructure) {
      this.structure[this.uids.length - 1] = [message.envelope, message.bodyStructure];
    }
  }

  size(i: number): number | undefined {
    const size = this.sizes[i]!;
    return size < 0 ? undefined : size;
  }

  /** True when the UIDs ascend (how servers answer a FETCH). */
  ascending(): boolean {
    for (let i = 1; i < this.uids.length; i++) if (this.uids[i - 1]! > this.uids[i]!) return false;
    return true;
  }

  /** Message i as summaryBuilder reads it, written into `into` (one object reused for the whole batch). */
  read(i: number, into: Writable<FetchMessageObject>): FetchMessageObject {
    into.uid = this.uids[i]!;
    into.size = this.size(i)!;
    const date = this.dates[i]!;
    into.internalDate = Number.isNaN(date) ? undefined! : new Date(date);
    into.flags = this.flags[i] as unknown as Set<string>;
    into.source = this.sources[i]!;
    const [envelope, bodyStructure] = this.structure[i] ?? [];
    into.envelope = envelope!;
    into.bodyStructure = bodyStructure!;
    // Yielded: the batch lets go of it.
    this.sources[i] = undefined;
    this.structure[i] = undefined!;
    return into;
  }

  /** Orders the batch by UID (only for a server that did not answer in order). */
  sortByUid(): void {
    const order = this.uids.map((_, i) => i).sort((x, y) => this.uids[x]! - this.uids[y]!);
    for (const list of [
      this.uids,
      this.sizes,
      this.dates,
      this.flags,
      this.sources,
      this.structure,
    ] as unknown[][]) {
      const sorted = order.map((i) => list[i]);
      list.splice(0, sorted.length, ...sorted);
    }
  }

  /** One array per distinct set of flags (most messages share a handful). */
  private shared(flags: Set<string> | undefined): readonly string[] {
    const list = flags ? Array.from(flags) : [];
    const key = list.join(" ");
    let known = this.flagSets.get(key);
    if (!known) {
      known = list;
      this.flagSets.set(key, known);
    }
    return known;
  }
}
