import type { Logger } from "@m365-mail/core";
import type { BridgeMetrics } from "../metrics.js";

/** A mailbox whose new IMAP or POP3 logins the bridge holds back while Microsoft 365 throttles it. */
export interface ThrottledMailbox {
  readonly protocol: "imap" | "pop3";
  readonly mailbox: string;
  /** When the bridge lets logins through again (ISO 8601). */
  readonly until: string;
}

/**
 * Exchange's back-offs run from ~90 s to ~300 s; a larger number (or a misread one) holds logins no
 * longer than this.
 */
export const MAX_HOLD_MS = 15 * 60_000;

/**
 * What the bridge knows about Microsoft 365 throttling its mailboxes. When Exchange answers "Request is
 * throttled. Suggested Backoff Time: N milliseconds" (to a sign-in, or to a command in a relayed IMAP
 * session), every further login is another request that lengthens the throttling (EmailEngine holds
 * them for that reason). So until the back-off has passed, new device logins to that mailbox over that
 * protocol are answered "try again later" by the bridge itself; sessions already open are not touched
 * (they see Exchange's own answers).
 */
export interface UpstreamThrottling {
  /**
   * Microsoft 365 asked for a back-off of `backoffMs` on `mailbox` over `protocol`: this bridge saw it
   * (`from` "here"), or another bridge of the fleet did and told this one (`from` "fleet").
   */
  note(protocol: "imap" | "pop3", mailbox: string, backoffMs: number, from?: "here" | "fleet"): void;
  /** Calls `listener` for each hold this bridge begins or lengthens from what it saw itself; returns the unsubscribe. */
  observe(listener: HoldListener): () => void;
  /** Milliseconds left before logins to `mailbox` go upstream again; 0 when they may. */
  remainingMs(protocol: "imap" | "pop3", mailbox: string): number;
  /** True when some mailbox is held (logins then check before they connect upstream). */
  any(): boolean;
  /** A login was answered "try later" because of a hold (counted in metrics). */
  held(protocol: "imap" | "pop3"): void;
  list(): ThrottledMailbox[];
}

export type HoldListener = (protocol: "imap" | "pop3", mailbox: string, backoffMs: number) => void;

export function createUpstreamThrottling(options: {
  logger: Logger;
  metrics?: BridgeMetrics;
  now?: () => number;
}): UpstreamThrottling {
  const now = options.now ?? Date.now;
  const until = new Map<string, number>();
  const listeners = new Set<HoldListener>();
  const key = (protocol: string, mailbox: string) => `${protocol} ${mailbox.toLowerCase()}`;
  const prune = () => {
    const t = now();
    for (const [k, end] of until) if (end <= t) until.delete(k);
  };
  return {
    note(protocol, mailbox, backoffMs, from = "here") {
      if (!(backoffMs > 0)) return;
      prune();
      const k = key(protocol, mailbox);
      const held = Math.min(backoffMs, MAX_HOLD_MS);
      const end = now() + held;
      const previous = until.get(k);
      if (previous !== undefined && previous >= end) return;
      until.set(k, end);
      if (from === "here") for (const listener of listeners) listener(protocol, mailbox, held);
      if (previous !== undefined) return; // the same episode, longer: logged when it began
      // Episodes this bridge met itself, not those other bridges reported.
      if (from === "here") options.metrics?.inc("m365_bridge_upstream_throttled_total", { protocol });
      const P = protocol.toUpperCase();
      const seen =
        from === "here"
          ? `Microsoft 365 is throttling ${P} for ${mailbox}`
          : `Another bridge reports that Microsoft 365 is throttling ${P} for ${mailbox}`;
      options.logger.warn(
        `${seen} (back-off ${Math.round(held / 1000)} s): new ${P} logins to it are answered "try again later" until ${new Date(end).toISOString()}; open sessions go on. If this recurs, fewer clients or sessions should use this mailbox at once.`,
      );
    },
    observe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    remainingMs(protocol, mailbox) {
      if (until.size === 0) return 0;
      const end = until.get(key(protocol, mailbox));
      if (end === undefined) return 0;
      const left = end - now();
      if (left > 0) return left;
      until.delete(key(protocol, mailbox));
      return 0;
    },
    any() {
      if (until.size === 0) return false;
      prune();
      return until.size > 0;
    },
    held(protocol) {
      options.metrics?.inc("m365_bridge_logins_held_total", { protocol });
    },
    list() {
      prune();
      return [...until].map(([k, end]) => {
        const [protocol, mailbox] = k.split(" ") as ["imap" | "pop3", string];
        return { protocol, mailbox, until: new Date(end).toISOString() };
      });
    },
  };
}
