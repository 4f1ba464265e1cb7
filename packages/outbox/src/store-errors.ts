import { M365MailError } from "@m365-mail/core";
import type { OutboxSettingNames } from "./outbox.js";

/** One error for an idempotency key reused with another message, in both backends. */
export function idempotencyConflict(): M365MailError {
  return new M365MailError(
    "MESSAGE_INVALID",
    "this Idempotency-Key was already used for a different message",
    {
      source: "outbox",
      status: 409,
      hint: "Use a new Idempotency-Key for a new message; repeat a key only to retry the same request.",
    },
  );
}

export function notFound(id: string): M365MailError {
  return new M365MailError("NOT_FOUND", `no outbox message ${JSON.stringify(id.slice(0, 200))}`, {
    source: "outbox",
    status: 404,
  });
}

export function notSettleable(state: string): M365MailError {
  return new M365MailError(
    "MESSAGE_INVALID",
    `only a queued or uncertain message can be retried or discarded; this one is ${state}`,
    {
      source: "outbox",
      status: 409,
      hint:
        state === "sending"
          ? "It is being delivered right now: read its state again in a moment."
          : "Sent and failed messages are settled: read the message's state first.",
    },
  );
}

export function shuttingDown(): M365MailError {
  return new M365MailError("SERVER_ERROR", "the outbox is shutting down", {
    source: "outbox",
    retryable: true,
  });
}

export function unknownLane(lane: string, lanes: readonly string[]): M365MailError {
  return new M365MailError("CONFIG_INVALID", `the outbox has no lane "${lane}"`, {
    source: "outbox",
    hint: `Use one of the lanes given in \`concurrency\`: ${lanes.join(", ")}.`,
  });
}

export function settingNames(names: OutboxSettingNames = {}): Required<OutboxSettingNames> {
  return {
    path: names.path ?? "the `path` option",
    redisUrl: names.redisUrl ?? "the `redisUrl` option",
    redis: names.redis ?? "redisOutbox()",
  };
}

/** The discard decision, recorded like an error so the status shows who stopped the message. */
export const DISCARDED = {
  code: "DISCARDED",
  message: "discarded by an operator; it may or may not have been delivered",
} as const;

/** The same for a message discarded while it waited for an attempt: the outbox did not send it after that. */
export const DISCARDED_QUEUED = {
  code: "DISCARDED",
  message: "discarded by an operator while queued; the outbox did not send it after that",
} as const;
