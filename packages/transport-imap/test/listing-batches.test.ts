import { describe, expect, it } from "vitest";
import { LISTING_SOURCE_BYTES, MAX_LISTING_BATCH, nextBatchSize } from "../src/listing-batches.js";

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
