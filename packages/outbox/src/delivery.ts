import { isM365MailError, type Logger, M365MailError } from "@m365-mail/core";
import type { StoredOutboxMessage } from "./outbox.js";
import type { SentItemsIndex } from "./sent-items.js";
import { maySubmitted } from "./submission.js";

export type DeliveryOutcome =
  | { ok: true; transport: string /** found in Sent Items after an uncertain attempt */; recovered: boolean }
  | {
      ok: false;
      error: M365MailError;
      /** Another attempt may succeed (throttling, a network fault). */
      retryable: boolean;
      /** The attempt may have reached Microsoft: look in Sent Items before the next one. */
      maybeSubmitted: boolean;
      /**
       * Its fate cannot be decided (Sent Items cannot be read, or the copy did not appear): the message
       * becomes `uncertain` and waits for an operator.
       */
      undecidable?: boolean;
      retryAfterMs?: number;
    };

export interface DeliveryJob<P = unknown> {
  message: StoredOutboxMessage<P>;
  /** A previous attempt may have been submitted (its process died, or it ended in a network fault). */
  uncertain: boolean;
  /** When the first attempt started (ms since the epoch): Sent Items are searched from a little before. */
  since: number;
  /** When this attempt was claimed; only a Sent Items listing taken after it is trusted. */
  claimedAt: number;
}

/** One delivery attempt. The outbox backends call it; `deliverer()` builds one from a send function. */
export type Deliver<P = unknown> = (job: DeliveryJob<P>, signal?: AbortSignal) => Promise<DeliveryOutcome>;

/** Sends one message; throws M365MailError (or anything, which counts as "may have been sent"). */
export type SendFunction<P = unknown> = (
  message: StoredOutboxMessage<P>,
  options: { signal?: AbortSignal },
) => Promise<{ transport: string }>;

export interface DelivererOptions<P = unknown> {
  send: SendFunction<P>;
  /** From `sentItemsIndex(mailbox, reader)`: looked at before any resend of an uncertain attempt. */
  sentItems: SentItemsIndex;
  logger: Logger;
}

/** Exponential backoff with jitter; a server's Retry-After wins when it is longer. */
export function backoffMs(attempt: number, baseMs: number, retryAfterMs?: number): number {
  const exp = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + Math.random() * (exp / 2);
  return Math.max(jittered, retryAfterMs ?? 0);
}

const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * How many attempts keep a message retrying for at least `ms` with `baseMs` (each wait at its shortest:
 * half of the doubled, capped backoff): a queue lifetime as `maxAttempts`.
 */
export function attemptsToRetryFor(ms: number, baseMs: number): number {
  let waited = 0;
  let attempts = 1;
  while (waited < ms) {
    waited += Math.min(MAX_BACKOFF_MS, baseMs * 2 ** (attempts - 1)) / 2;
    attempts++;
  }
  return attempts;
}

function asMailError(error: unknown): M365MailError {
  if (isM365MailError(error)) return error;
  return new M365MailError(
    "SERVER_ERROR",
    `delivery failed unexpectedly: ${(error as Error)?.message ?? error}`,
    { source: "outbox", cause: error },
  );
}

/** Turns a send's failure into an outcome: retry, fail, and whether Sent Items must be checked first. */
export function failureOutcome(error: unknown): DeliveryOutcome & { ok: false } {
  const mailError = asMailError(error);
  return {
    ok: false,
    error: mailError,
    retryable: mailError.retryable || mailError.code === "ABORTED",
    maybeSubmitted: isM365MailError(error) ? maySubmitted(mailError) : true,
    ...(mailError.retryAfterSeconds ? { retryAfterMs: mailError.retryAfterSeconds * 1000 } : {}),
  };
}

/**
 * One delivery attempt of one outbox message: when a previous attempt may have reached Microsoft, its
 * Message-ID is looked up in Sent Items first — found means sent; not found (after the grace period the
 * outbox waited) or not checkable means the message's fate is undecided, and it goes to an operator.
 */
export function deliverer<P>(options: DelivererOptions<P>): Deliver<P> {
  const { send, sentItems, logger } = options;
  return async function deliver(job, signal) {
    if (job.uncertain) {
      let found: boolean;
      try {
        found = await sentItems.has(job.message.messageId, job.since, job.claimedAt);
      } catch (error) {
        const mailError = asMailError(error);
        // Without the check a resend could deliver twice: retry the check, never the send.
        return {
          ok: false,
          error: new M365MailError(
            mailError.code,
            `cannot check Sent Items before a resend: ${mailError.message}`,
            {
              source: "outbox",
              cause: mailError,
              hint:
                mailError.hint ??
                "The outbox retries the check; if it keeps failing, look for the Message-ID in Sent Items yourself.",
            },
          ),
          retryable: mailError.retryable,
          maybeSubmitted: true,
          undecidable: !sentItems.available,
        };
      }
      if (found) {
        logger.info("an uncertain attempt was found in Sent Items: not sending again", {
          messageId: job.message.messageId,
        });
        return { ok: true, transport: "sent-items", recovered: true };
      }
      logger.warn("an uncertain attempt is not in Sent Items after the grace period: left to an operator", {
        messageId: job.message.messageId,
      });
      return {
        ok: false,
        error: new M365MailError(
          "NOT_FOUND",
          "an attempt may have reached Microsoft 365, and its copy is not in Sent Items after the grace period",
          {
            source: "outbox",
            hint: "Look for the Message-ID in Sent Items and in the recipients' mailboxes, then retry or discard the message; a longer Sent Items grace period lets slow filing settle this by itself.",
          },
        ),
        retryable: false,
        maybeSubmitted: true,
        undecidable: true,
      };
    }
    try {
      const result = await send(job.message, signal ? { signal } : {});
      return { ok: true, transport: result.transport, recovered: false };
    } catch (error) {
      return failureOutcome(error);
    }
  };
}
