import type { Logger, Mailbox } from "@m365-mail/core";
import {
  deliverer,
  type Outbox,
  redisOutbox,
  type SendFunction,
  sentItemsIndex,
  sqliteOutbox,
} from "@m365-mail/outbox";
import type { ServerConfig } from "./config.js";
import { type StoredMessage, toOutgoingMessage } from "./send-request.js";

/** The server's names for the outbox's settings, so its hints name what to change here. */
const SETTING_NAMES = { path: "OUTBOX_PATH", redisUrl: "REDIS_URL", redis: "OUTBOX=redis" };

/**
 * The transport that reads Sent Items before a resend. Graph is best ($filter on the date,
 * internetMessageId in every summary); IMAP also sees what was sent over SMTP, since Exchange files
 * SMTP-submitted mail in Sent Items too.
 */
export function sentItemsReader(transports: readonly string[]): string | undefined {
  return transports.includes("graph") ? "graph" : transports.includes("imap") ? "imap" : undefined;
}

/** The outbox of config.outbox, delivering through the server's mailbox. */
export function createServerOutbox(
  config: ServerConfig,
  mailbox: Mailbox,
  logger: Logger,
): Outbox<StoredMessage> {
  const names = mailbox.transports().map((t) => t.name);
  const send: SendFunction<StoredMessage> = async (message, { signal }) => {
    const via = message.via === "auto" ? ["graph", "smtp"].filter((t) => mailbox.has(t)) : [message.via];
    const result = await mailbox.send(toOutgoingMessage(message.payload), {
      via,
      ...(signal ? { signal } : {}),
    });
    return { transport: result.transport };
  };
  const reader = sentItemsReader(names);
  if (!reader && (names.includes("graph") || names.includes("smtp"))) {
    logger.warn(
      "no transport can read Sent Items (add graph with Mail.Read, or imap, to TRANSPORTS): a send whose answer is lost cannot be checked before a resend, so it stays 'uncertain' until you retry or discard it (POST /v1/outbox/{id}/resolve)",
    );
  }
  const deliver = deliverer({
    send,
    sentItems: sentItemsIndex(mailbox, reader, {
      missingReaderHint:
        "Add graph (with Mail.Read) or imap to TRANSPORTS so the outbox can check Sent Items instead of risking a second delivery; until then, retry or discard the message with POST /v1/outbox/{id}/resolve.",
    }),
    logger,
  });
  const common = {
    deliver,
    concurrency: { graph: config.graphConcurrency, smtp: config.smtpConnections },
    maxAttempts: config.maxAttempts,
    retryBaseMs: config.retryBaseMs,
    sentItemsGraceMs: config.sentItemsGraceMs,
    logger,
    settingNames: SETTING_NAMES,
  };
  return config.outbox === "redis"
    ? redisOutbox({
        ...common,
        redisUrl: config.redisUrl!,
        perMinute: { smtp: config.smtpPerMinute },
        lockDurationMs: config.redisLockMs,
      })
    : sqliteOutbox({ ...common, path: config.outboxPath, synchronous: config.sqliteSynchronous });
}
