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
