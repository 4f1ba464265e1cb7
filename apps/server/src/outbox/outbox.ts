import type { EventEmitter } from "node:events";
import { M365MailError } from "@m365-mail/core";
import type { PreparedSend } from "../send-request.js";

/**
 * queued → sending → sent | failed. A message "sending" when its process died is looked up in Sent
 * Items by its Message-ID before it is sent again: found means sent, so nothing is delivered twice.
 */
export type OutboxState = "queued" | "sending" | "sent" | "failed";

export const OUTBOX_STATES: readonly OutboxState[] = ["queued", "sending", "sent", "failed"];

export interface OutboxError {
  code: string;
  message: string;
  hint?: string;
}

/** What the status endpoint shows for one accepted message. */
export interface OutboxEntry {
  id: string;
  state: OutboxState;
  /** The RFC 5322 Message-ID, fixed at acceptance. */
  messageId: string;
  via: string;
  subject?: string;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt?: string;
  sentAt?: string;
  /** The transport that delivered it, or "sent-items" when a crashed attempt was found there. */
  transport?: string;
  error?: OutboxError;
}

export interface AcceptInput {
  prepared: PreparedSend;
  /** Already scoped to the API key: the same header value from two keys is two messages. */
  idempotencyKey?: string;
}

export interface AcceptResult {
  entry: OutboxEntry;
  /** True when the Idempotency-Key was seen before: nothing new was stored. */
  replayed: boolean;
}

export interface Outbox {
  readonly kind: "sqlite" | "redis";
  /** Resolves only once the message is durably stored. */
  accept(input: AcceptInput): Promise<AcceptResult>;
  get(id: string): Promise<OutboxEntry | undefined>;
  list(options: { limit: number; state?: OutboxState }): Promise<OutboxEntry[]>;
  counts(): Promise<Record<OutboxState, number>>;
  /** Starts delivering (workers, recovery of a previous run). */
  start(): Promise<void>;
  /** For readiness: throws when the store is unusable. */
  check(): Promise<void>;
  /** Stops taking work, waits for deliveries in flight (up to a bound), closes the store. */
  close(): Promise<void>;
  /** "change" with an OutboxEntry whenever a message changes state. */
  readonly events: EventEmitter;
}

/** An Idempotency-Key seen before with another body (409): the same for every outbox store. */
export function idempotencyConflict(): M365MailError {
  return new M365MailError(
    "MESSAGE_INVALID",
    "this Idempotency-Key was already used for a different message",
    {
      source: "server",
      status: 409,
      hint: "Use a new Idempotency-Key for a new message; repeat a key only to retry the same request.",
    },
  );
}
