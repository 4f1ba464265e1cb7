import type { FetchMessageObject } from "imapflow";
import { describe, expect, it } from "vitest";
import { HeldBatch, LISTING_SOURCE_BYTES, MAX_LISTING_BATCH, nextBatchSize } from "../src/listing-batches.js";
import type { Writable } from "../src/summary.js";

describe("nextBatchSize", () => {
  it("grows a listing's FETCH fourfold up to 1,000 messages", () => {
    const sizes = [200];
    while (sizes.length < 5) sizes.push(nextBatchSize(sizes.at(-1)!));
    expect(sizes).toEqual([200, 800, MAX_LISTING_BATCH, MAX_LISTING_BATCH, MAX_LISTING_BATCH]);
    expect(nextBatchSize(3)).toBe(12);
  });
  it("keeps a batch of sources to about 16 MB, judged by the average message so far", () => {
    expect(nextBatchSize(200, 100_000)).toBe(Math.floor(LISTING_SOURCE_BYTES / 100_000));
    expect(nextBatchSize(200, 10 * LISTING_SOURCE_BYTES)).toBe(1);
    expect(nextBatchSize(200, 1000)).toBe(800);
  });
  it("never shrinks a size the caller chose above the cap, unless sources would not fit", () => {
    expect(nextBatchSize(5000)).toBe(5000);
    expect(nextBatchSize(5000, 1000)).toBe(5000);
  });
});

describe("HeldBatch", () => {
  const message = (uid: number, extra: Partial<FetchMessageObject> = {}) =>
    ({
      seq: uid,
      uid,
      flags: new Set(uid % 2 ? ["\\Seen"] : []),
      size: uid * 10,
      internalDate: new Date(Date.UTC(2026, 11, uid)),
      source: Buffer.from(`Subject: ${uid}\r\n\r\nbody`),
      ...extra,
    }) as FetchMessageObject;

  it("gives back each message as summaryBuilder reads it, and lets go of its source once read", () => {
    const batch = new HeldBatch();
    for (const uid of [3, 4, 5]) batch.push(message(uid));
    expect(batch.length).toBe(3);
    expect(batch.ascending()).toBe(true);
    const into = {} as Writable<FetchMessageObject>;
    const read = batch.read(2, into);
    expect(read.uid).toBe(5);
    expect(read.size).toBe(50);
    expect(read.internalDate).toEqual(new Date(Date.UTC(2026, 11, 5)));
    expect([...read.flags!]).toEqual(["\\Seen"]);
    expect(read.source!.toString()).toBe("Subject: 5\r\n\r\nbody");
    // Read again (a bug) it has no source: the batch no longer holds it.
    expect(batch.read(2, {} as Writable<FetchMessageObject>).source).toBeUndefined();
  });

  it("sorts by UID for a server that answered out of order, every field moving with its message", () => {
    const batch = new HeldBatch();
    for (const uid of [7, 2, 5]) batch.push(message(uid));
    expect(batch.ascending()).toBe(false);
    batch.sortByUid();
    expect(batch.ascending()).toBe(true);
    const into = {} as Writable<FetchMessageObject>;
    expect([0, 1, 2].map((i) => batch.read(i, into).source!.toString().split("\r\n")[0])).toEqual([
      "Subject: 2",
      "Subject: 5",
      "Subject: 7",
    ]);
    expect(batch.size(0)).toBe(20);
  });

  it("keeps a missing size or date missing, and ENVELOPE/BODYSTRUCTURE when there is no source", () => {
    const batch = new HeldBatch();
    const envelope = { subject: "hi" } as FetchMessageObject["envelope"];
    batch.push(message(1, { size: undefined, internalDate: undefined, source: undefined, envelope }));
    const read = batch.read(0, {} as Writable<FetchMessageObject>);
    expect(batch.size(0)).toBeUndefined();
    expect(read.internalDate).toBeUndefined();
    expect(read.envelope).toBe(envelope);
  });
});
