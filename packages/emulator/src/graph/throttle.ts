import { GraphError } from "./graph-error.js";

/**
 * Outlook's limits per app and mailbox: concurrent requests and a request budget per window.
 * Source: https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits
 */
export interface GraphLimits {
  /** Requests in flight at once per app + mailbox. @default 4 */
  concurrency: number;
  /** Requests per window per app + mailbox. @default 10000 */
  requestsPerWindow: number;
  /** Window length in seconds. @default 600 */
  windowSeconds: number;
  /** Retry-After sent with a concurrency 429. @default 1 */
  concurrencyRetryAfterSeconds: number;
}

export const DEFAULT_GRAPH_LIMITS: Readonly<GraphLimits> = {
  concurrency: 4,
  requestsPerWindow: 10_000,
  windowSeconds: 600,
  concurrencyRetryAfterSeconds: 1,
};

interface Bucket {
  inFlight: number;
  /** Most requests in flight at once since the bucket was created (or reset). */
  peak: number;
  windowStart: number;
  used: number;
}

/** One instance per Graph part; keys are `appId|mailbox`. */
export class GraphThrottle {
  private limits: GraphLimits;
  private readonly buckets = new Map<string, Bucket>();

  constructor(limits: Partial<GraphLimits> = {}) {
    this.limits = normalize({ ...DEFAULT_GRAPH_LIMITS, ...limits });
  }

  get current(): Readonly<GraphLimits> {
    return this.limits;
  }

  /** Changes take effect for the next request; windows already running keep their start. */
  setLimits(limits: Partial<GraphLimits>): Readonly<GraphLimits> {
    this.limits = normalize({ ...this.limits, ...limits });
    return this.limits;
  }

  /** Forgets usage (budgets and in-flight counts stay consistent: releases of old slots are ignored). */
  reset(): void {
    this.buckets.clear();
  }

  /** Per `appId|mailbox`: requests in flight, the most at once, and requests used in the current window. */
  stats(): Record<string, { inFlight: number; peak: number; used: number }> {
    const out: Record<string, { inFlight: number; peak: number; used: number }> = {};
    for (const [key, bucket] of this.buckets)
      out[key] = { inFlight: bucket.inFlight, peak: bucket.peak, used: bucket.used };
    return out;
  }

  /**
   * Takes a slot or throws Outlook's 429. The returned function frees the slot; call it exactly once
   * when the answer has been produced.
   */
  acquire(key: string, now = Date.now()): () => void {
    const bucket = this.bucket(key, now);
    if (now - bucket.windowStart >= this.limits.windowSeconds * 1000) {
      bucket.windowStart = now;
      bucket.used = 0;
    }
    if (bucket.used >= this.limits.requestsPerWindow) {
      const wait = Math.max(
        1,
        Math.ceil((bucket.windowStart + this.limits.windowSeconds * 1000 - now) / 1000),
      );
      throw throttled("Application is over its request limit.", wait);
    }
    if (bucket.inFlight >= this.limits.concurrency) {
      throw throttled(
        "Application is over its MailboxConcurrency limit.",
        this.limits.concurrencyRetryAfterSeconds,
      );
    }
    bucket.used += 1;
    bucket.inFlight += 1;
    bucket.peak = Math.max(bucket.peak, bucket.inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A reset() in between created a new bucket: do not drive it below zero.
      if (this.buckets.get(key) === bucket) bucket.inFlight -= 1;
    };
  }

  private bucket(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { inFlight: 0, peak: 0, windowStart: now, used: 0 };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }
}

function throttled(message: string, retryAfterSeconds: number): GraphError {
  return new GraphError(429, "ApplicationThrottled", message, { "Retry-After": String(retryAfterSeconds) });
}

function normalize(limits: GraphLimits): GraphLimits {
  const positive = (value: number, name: string): number => {
    if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a number >= 1`);
    return Math.floor(value);
  };
  return {
    concurrency: positive(limits.concurrency, "concurrency"),
    requestsPerWindow: positive(limits.requestsPerWindow, "requestsPerWindow"),
    windowSeconds: positive(limits.windowSeconds, "windowSeconds"),
    concurrencyRetryAfterSeconds: positive(
      limits.concurrencyRetryAfterSeconds,
      "concurrencyRetryAfterSeconds",
    ),
  };
}
