import type { RequestCounters } from "./context.js";

/**
 * Named request counters, e.g. `entra.token.password` and `entra.token.password:support@contoso.com`.
 * Tests read them to prove a client did (or did not) go back to the server.
 */
export function createRequestCounters(): RequestCounters {
  const counts = new Map<string, number>();
  return {
    increment(name, by = 1) {
      counts.set(name, (counts.get(name) ?? 0) + by);
    },
    snapshot() {
      return Object.fromEntries([...counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
    },
    reset() {
      counts.clear();
    },
  };
}
