export interface LoopDetectionOptions {
  /** Identical token requests allowed per window before AADSTS50196. @default 200 */
  maxRequests?: number;
  /** @default 10 */
  windowSeconds?: number;
}

export interface LoopDetector {
  /** Records one request; false when it crosses the limit (answer AADSTS50196). */
  hit(key: string): boolean;
  configure(options: LoopDetectionOptions): void;
  settings(): Required<LoopDetectionOptions>;
}

/**
 * Entra refuses a client that asks for the same token too often (AADSTS50196, "client request loop"):
 * a client without a token cache trips it. Generous by default so ordinary tests never do.
 */
export function createLoopDetector(options: LoopDetectionOptions = {}): LoopDetector {
  let maxRequests = options.maxRequests ?? 200;
  let windowMs = (options.windowSeconds ?? 10) * 1000;
  const hits = new Map<string, number[]>();
  return {
    hit(key) {
      const now = Date.now();
      const recent = (hits.get(key) ?? []).filter((t) => now - t < windowMs);
      recent.push(now);
      hits.set(key, recent);
      return recent.length <= maxRequests;
    },
    configure(next) {
      if (next.maxRequests !== undefined) maxRequests = next.maxRequests;
      if (next.windowSeconds !== undefined) windowMs = next.windowSeconds * 1000;
      hits.clear();
    },
    settings() {
      return { maxRequests, windowSeconds: windowMs / 1000 };
    },
  };
}
