import { describe, expect, it } from "vitest";
import {
  BatchSizer,
  DEFAULT_BATCH,
  MAX_BATCH,
  SOURCE_BATCH_BYTES,
  sequenceWindow,
} from "../src/listing-batches.js";

const batch = (size: number, waitMs: number, totalMs: number, sourceBytes = 0) => ({
  asked: size,
  received: size,
  sourceBytes,
  waitMs,
  totalMs,
});

describe("sequenceWindow", () => {
  it("walks a folder top down in windows of the batch size", () => {
    expect(sequenceWindow(13, 12, 5)).toEqual({ from: 8, to: 12 });
    expect(sequenceWindow(8, 12, 5)).toEqual({ from: 3, to: 7 });
    expect(sequenceWindow(3, 12, 5)).toEqual({ from: 1, to: 2 });
    expect(sequenceWindow(1, 12, 5)).toBeUndefined();
  });

  it("never asks for numbers above what the connection knows exists (after expunges)", () => {
    expect(sequenceWindow(10, 4, 5)).toEqual({ from: 1, to: 4 });
    expect(sequenceWindow(10, 0, 5)).toBeUndefined();
  });
});

describe("BatchSizer", () => {
  it("keeps a size the caller chose, and never goes below one message", () => {
    const chosen = new BatchSizer(3, true);
    chosen.observe(batch(3, 90, 100, 3 * SOURCE_BATCH_BYTES));
    expect(chosen.next()).toBe(3);
    expect(new BatchSizer(0, false).next()).toBe(1);
    expect(new BatchSizer(Number.NaN, false).next()).toBe(DEFAULT_BATCH);
  });

  it("stays at 200 when the server answers at once (a LAN)", () => {
    const sizer = new BatchSizer(undefined, true);
    sizer.observe(batch(DEFAULT_BATCH, 1, 20, DEFAULT_BATCH * 9000));
    expect(sizer.next()).toBe(DEFAULT_BATCH);
  });

  it("grows up to 1,000 while most of a batch is spent waiting for the first message (a WAN)", () => {
    const sizer = new BatchSizer(undefined, false);
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      sizer.observe(batch(sizer.next(), 60, 100));
      sizes.push(sizer.next());
    }
    expect(sizes).toEqual([400, 800, MAX_BATCH, MAX_BATCH, MAX_BATCH]);
  });

  it("does not grow on a short last batch", () => {
    const sizer = new BatchSizer(undefined, false);
    sizer.observe({ asked: DEFAULT_BATCH, received: 7, sourceBytes: 0, waitMs: 60, totalMs: 61 });
    expect(sizer.next()).toBe(DEFAULT_BATCH);
  });

  it("with sources, keeps a batch to about 8 MB of them", () => {
    const sizer = new BatchSizer(undefined, true);
    sizer.observe(batch(DEFAULT_BATCH, 60, 100, DEFAULT_BATCH * 1024 * 1024));
    expect(sizer.next()).toBe(8);
  });
});
