import { isM365MailError, type Logger, M365MailError, type Mailbox } from "@m365-mail/core";
import { type SendVia, type StoredMessage, toOutgoingMessage } from "../send-request.js";

/** Codes after which Microsoft may have accepted the message although we saw no success. */
const MAYBE_SUBMITTED = new Set([
  "TIMEOUT",
  "CONNECTION_FAILED",
  "INVALID_RESPONSE",
  "SERVER_ERROR",
  "ABORTED",
]);

export type DeliveryOutcome =
  | { ok: true; transport: string /** found in Sent Items after an uncertain attempt */; recovered: boolean }
  | {
      ok: false;
      error: M365MailError;
      /** Another attempt may succeed (throttling, a network fault). */
      retryable: boolean;
      /** The attempt may have reached Microsoft: look in Sent Items before the next one. */
      maybeSubmitted: boolean;
      retryAfterMs?: number;
    };

export interface DeliveryJob {
  message: StoredMessage;
  via: SendVia;
  /** A previous attempt may have been submitted (its process died, or it ended in a network fault). */
  uncertain: boolean;
  /** When the first attempt started (ms since the epoch): Sent Items are searched from a little before. */
  since: number;
  /** When this attempt was claimed; only a Sent Items listing taken after it is trusted. */
  claimedAt: number;
}

function normalizeId(id: string): string {
  return id.trim().replace(/^<|>$/g, "").toLowerCase();
}

/**
 * Finds Message-IDs in the mailbox's Sent Items, where Exchange files every message it accepted (over
 * Graph and SMTP alike). Concurrent look-ups share one listing, so recovering many messages after a
 * crash costs one pass over Sent Items, not one per message.
 */
export function sentItemsIndex(mailbox: Mailbox, reader: string | undefined) {
  // A listing is shared only by checks whose messages were claimed before it started: a listing taken
  // earlier might predate an attempt that was still in flight.
  let inflight: { since: number; startedAt: number; promise: Promise<Set<string>> } | undefined;
  const list = async (since: number): Promise<Set<string>> => {
    const transport = mailbox.transport(reader!);
    const found = new Set<string>();
    for await (const summary of transport.listMessages!({
      folder: "sent",
      since: new Date(since),
      pageSize: 500,
    })) {
      if (summary.internetMessageId) found.add(normalizeId(summary.internetMessageId));
    }
    return found;
  };
  return {
    available: reader !== undefined,
    async has(messageId: string, since: number, claimedAt: number): Promise<boolean> {
      if (!reader) {
        throw new M365MailError(
          "NOT_SUPPORTED",
          "no transport can read Sent Items to check an uncertain send",
          {
            source: "server",
            hint: "Add graph (with Mail.Read) or imap to TRANSPORTS so the outbox can check Sent Items instead of risking a second delivery.",
          },
        );
      }
      // Clocks differ: search from five minutes before the first attempt.
      const from = since - 5 * 60_000;
      if (!inflight || inflight.since > from || inflight.startedAt < claimedAt) {
        const entry = { since: from, startedAt: Date.now(), promise: list(from) };
        inflight = entry;
        const forget = () => {
          if (inflight === entry) inflight = undefined;
        };
        entry.promise.then(() => setTimeout(forget, 250).unref(), forget);
      }
      return (await inflight.promise).has(normalizeId(messageId));
    },
  };
}

export type SentItemsIndex = ReturnType<typeof sentItemsIndex>;

/** Exponential backoff with jitter; a server's Retry-After wins when it is longer. */
export function backoffMs(attempt: number, baseMs: number, retryAfterMs?: number): number {
  const exp = Math.min(5 * 60_000, baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + Math.random() * (exp / 2);
  return Math.max(jittered, retryAfterMs ?? 0);
}

function asMailError(error: unknown): M365MailError {
  if (isM365MailError(error)) return error;
  return new M365MailError(
    "SERVER_ERROR",
    `delivery failed unexpectedly: ${(error as Error)?.message ?? error}`,
    {
      source: "server",
      cause: error,
    },
  );
}

/** One delivery attempt of one outbox message, with the Sent Items check first when it is uncertain. */
export function deliverer(options: { mailbox: Mailbox; sentItems: SentItemsIndex; logger: Logger }) {
  const { mailbox, sentItems, logger } = options;
  return async function deliver(job: DeliveryJob, signal?: AbortSignal): Promise<DeliveryOutcome> {
    if (job.uncertain) {
      try {
        if (await sentItems.has(job.message.messageId, job.since, job.claimedAt)) {
          logger.info("an uncertain attempt was found in Sent Items: not sending again", {
            messageId: job.message.messageId,
          });
          return { ok: true, transport: "sent-items", recovered: true };
        }
      } catch (error) {
        const mailError = asMailError(error);
        // Without the check a resend could deliver twice: retry the check, never the send.
        return {
          ok: false,
          error: new M365MailError(
            mailError.code,
            `cannot check Sent Items before a resend: ${mailError.message}`,
            {
              source: "server",
              cause: mailError,
              hint:
                mailError.hint ??
                "The outbox retries the check; if it keeps failing, look for the Message-ID in Sent Items yourself.",
            },
          ),
          retryable: mailError.retryable,
          maybeSubmitted: true,
        };
      }
    }
    const via = job.via === "auto" ? ["graph", "smtp"].filter((t) => mailbox.has(t)) : [job.via];
    try {
      const result = await mailbox.send(toOutgoingMessage(job.message), {
        via,
        ...(signal ? { signal } : {}),
      });
      return { ok: true, transport: result.transport, recovered: false };
    } catch (error) {
      const mailError = asMailError(error);
      const maybeSubmitted = MAYBE_SUBMITTED.has(mailError.code);
      return {
        ok: false,
        error: mailError,
        retryable: mailError.retryable || mailError.code === "ABORTED",
        maybeSubmitted,
        ...(mailError.retryAfterSeconds ? { retryAfterMs: mailError.retryAfterSeconds * 1000 } : {}),
      };
    }
  };
}

export type Deliver = ReturnType<typeof deliverer>;
