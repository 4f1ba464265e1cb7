import type { EventEmitter } from "node:events";

/**
 * queued → sending → sent | failed | uncertain.
 *
 * A message "sending" when its process died is looked up in Sent Items by its Message-ID before it is
 * sent again: found means sent. A message whose fate cannot be decided (no transport can read Sent
 * Items, or its copy did not appear there within the grace period) is `uncertain`: it keeps its payload
 * and waits for an operator's `resolve(id, "retry" | "discard")`.
 */
export type OutboxState = "queued" | "sending" | "sent" | "failed" | "uncertain";

export const OUTBOX_STATES: readonly OutboxState[] = ["queued", "sending", "sent", "failed", "uncertain"];

export interface OutboxError {
  code: string;
  message: string;
  hint?: string;
}

/** What a consumer hands to `accept()`. */
export interface OutboxMessage<P = unknown> {
  /** The RFC 5322 Message-ID, fixed before acceptance: it is what Sent Items are searched for. */
  messageId: string;
  /**
   * Which concurrency lane delivers it: a key of the outbox's `concurrency` option ("graph", "smtp").
   * Lanes keep Microsoft's per-mailbox limits apart (4 concurrent Graph requests, 3 SMTP connections).
   */
  lane: string;
  /** How the consumer will deliver it ("auto", "graph", "smtp"); shown in status, passed to deliver. */
  via: string;
  /** Shown in status. */
  subject?: string;
  /** Who accepted it (an API key's name): shown in status, and `list` can select by it. */
  owner?: string;
  /**
   * A hash of the request that produced the message: an idempotency key repeated with another
   * fingerprint is refused (409) instead of answered with the first message.
   */
  fingerprint?: string;
  /** Consumer-defined, JSON-serialisable (a structured message, an SMTP envelope). */
  payload: P;
  /** Raw bytes (a MIME message): stored as bytes (a SQLite BLOB, a Redis string), never as base64 JSON. */
  raw?: Uint8Array;
}

/** A message as delivery sees it. */
export interface StoredOutboxMessage<P = unknown> {
  messageId: string;
  via: string;
  subject?: string;
  payload: P;
  raw?: Buffer;
}

/** What the status endpoint shows for one accepted message. */
export interface OutboxEntry {
  id: string;
  state: OutboxState;
  /** The RFC 5322 Message-ID, fixed at acceptance. */
  messageId: string;
  via: string;
  subject?: string;
  /** As given to `accept`. */
  owner?: string;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt?: string;
  sentAt?: string;
  /** The transport that delivered it, or "sent-items" when an uncertain attempt was found there. */
  transport?: string;
  error?: OutboxError;
}

export interface ListOptions {
  limit: number;
  state?: OutboxState;
  owner?: string;
  /**
   * The next page: entries older than `id`, the last entry of the previous page, which was entry
   * number `position` (1-based) of the listing. SQLite seeks to `id`; Redis reads `position + limit`
   * entries of each queue and skips to it, so its later pages cost more.
   */
  after?: { id: string; position: number };
}

export interface AcceptInput<P = unknown> {
  message: OutboxMessage<P>;
  /** Scope it yourself (per API key, per account): the same key is the same message. */
  idempotencyKey?: string;
}

export interface AcceptResult {
  entry: OutboxEntry;
  /** True when the idempotency key was seen before: nothing new was stored. */
  replayed: boolean;
}

/**
 * An operator's decision on a message. `uncertain`: `retry` sends it again (the operator checked it was
 * not delivered), `discard` drops it. `queued` (waiting for its next attempt, e.g. held while a sign-in
 * problem is fixed): `retry` makes that attempt now (a Sent Items check still comes first where one is
 * due), `discard` drops it before it is sent. A dropped message is `failed` with code `DISCARDED`.
 */
export type ResolveAction = "retry" | "discard";

export interface Outbox<P = unknown> {
  readonly kind: "sqlite" | "redis";
  /** Resolves only once the message is durably stored. */
  accept(input: AcceptInput<P>): Promise<AcceptResult>;
  get(id: string): Promise<OutboxEntry | undefined>;
  /** Newest first. */
  list(options: ListOptions): Promise<OutboxEntry[]>;
  counts(): Promise<Record<OutboxState, number>>;
  /**
   * An operator's decision on an `uncertain` or `queued` message (see ResolveAction). Throws NOT_FOUND
   * for an unknown id and MESSAGE_INVALID (409) in another state (`sending`: being delivered right now).
   */
  resolve(id: string, action: ResolveAction): Promise<OutboxEntry>;
  /** Starts delivering (workers, recovery of a previous run). */
  start(): Promise<void>;
  /** For readiness: throws when the store is unusable. */
  check(): Promise<void>;
  /** Stops taking work, waits for deliveries in flight (up to a bound), closes the store. */
  close(): Promise<void>;
  /**
   * "change" (OutboxEntry) whenever a message changes state; "delivery" ({ result: "sent" | "retry" |
   * "failed" | "uncertain", transport?, code? }) after each attempt; "recovered" ({ outcome:
   * "found-in-sent-items" | "resent" }) when an uncertain attempt is settled.
   */
  readonly events: EventEmitter;
}

/** Names of the consumer's own settings, used in error hints ("OUTBOX_PATH", "spool.path"). */
export interface OutboxSettingNames {
  /** @default "the `path` option" */
  path?: string;
  /** @default "the `redisUrl` option" */
  redisUrl?: string;
  /** How to run several processes. @default "redisOutbox()" */
  redis?: string;
}
