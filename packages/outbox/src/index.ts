export {
  attemptsToRetryFor,
  backoffMs,
  type Deliver,
  type DelivererOptions,
  type DeliveryJob,
  type DeliveryOutcome,
  deliverer,
  failureOutcome,
  type SendFunction,
} from "./delivery.js";
export {
  type AcceptInput,
  type AcceptResult,
  type ListOptions,
  OUTBOX_STATES,
  type Outbox,
  type OutboxEntry,
  type OutboxError,
  type OutboxMessage,
  type OutboxSettingNames,
  type OutboxState,
  type ResolveAction,
  type StoredOutboxMessage,
} from "./outbox.js";
export { type RedisOutboxOptions, redisOutbox } from "./redis-outbox.js";
export { type SentItemsIndex, type SentItemsIndexOptions, sentItemsIndex } from "./sent-items.js";
export { type SqliteOutboxOptions, sqliteOutbox } from "./sqlite-outbox.js";
export { maySubmitted } from "./submission.js";
