import {
  createMailbox,
  isDailySendingLimit,
  isM365MailError,
  type Logger,
  M365MailError,
} from "@m365-mail/core";
import {
  attemptsToRetryFor,
  type Deliver,
  failureOutcome,
  type Outbox,
  type OutboxEntry,
  type OutboxState,
  redisOutbox,
  type SentItemsIndex,
  sentItemsIndex,
  sqliteOutbox,
} from "@m365-mail/outbox";
import { graphTransport } from "@m365-mail/transport-graph";
import type { M365Connection, SpoolInput } from "../config-schema.js";
import type { Credentials } from "../credentials.js";
import type { BridgeMetrics } from "../metrics.js";
import { needsAPerson } from "../sign-in-problems.js";
import type { Delivery } from "./deliver.js";
import { withMessageId } from "./message-id.js";
import { findHeaderEnd } from "./recipients.js";
import type { AcceptedMessage } from "./smtp-front-door.js";

/** What the spool stores next to the raw MIME: enough to sign in and deliver after a restart. */
export interface SpoolPayload {
  readonly account: string;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
}

export interface Spool {
  /** Resolves with the Message-ID once the message is durably stored. */
  accept(message: AcceptedMessage): Promise<string>;
  /** Messages by state, as of the last change (for status). */
  counts(): SpoolCounts;
  /**
   * Newest first, at most `limit`: of one state, or of every state that still needs the spool or a
   * person (queued, sending, uncertain, failed). `owner` is the account's name.
   */
  list(options: { state?: OutboxState; limit: number }): Promise<OutboxEntry[]>;
  /**
   * An operator's decision (`m365-mail bridge spool retry|discard`) on an `uncertain` message (retry after
   * checking Sent Items, or discard) or a `queued` one (retry now instead of after its backoff, e.g. once a
   * sign-in problem is fixed; or discard before it is sent). NOT_FOUND for an unknown id, MESSAGE_INVALID
   * in another state.
   */
  resolve(id: string, action: "retry" | "discard"): Promise<OutboxEntry>;
  /** Sends the account's queued messages now, not at their next attempt (its sign-in problem is over). */
  wake(account: string): Promise<number>;
  close(): Promise<void>;
}

export interface SpoolCounts {
  /** When the oldest message still queued or being sent was accepted (ISO 8601); absent when none. */
  readonly oldestPendingSince?: string;
  readonly queued: number;
  readonly sending: number;
  /** May have reached Microsoft 365 and Sent Items cannot tell: an operator decides. */
  readonly uncertain: number;
  /** Given up: refused for good, or not delivered within `spool.maxQueueHours`. */
  readonly failed: number;
}

/**
 * Errors a person can fix without touching the message — the account's sign-in (a wrong or expired stored
 * password, MFA, consent, a missing device-code sign-in), a permission (Send As, Mail.Send), the account's
 * settings — hold it in the spool, as a mail server defers mail, instead of failing it: the device already
 * had its 250. The bridge reports them (status, metrics, webhook), and once fixed the next retry delivers.
 */
const heldForAPerson = (error: unknown) => needsAPerson(error) || isM365MailError(error, "AUTH_FAILED");

/**
 * "spool" answer mode: `250` once the message is in the outbox (`@m365-mail/outbox`, the sample server's
 * SQLite/Redis queue), then delivery with retries. Spooled accounts are mapped accounts, so the bridge can
 * sign in after a restart without the device. When an attempt may have reached Microsoft 365 (a crash, a
 * timeout), its Message-ID is looked for in the mailbox's Sent Items before any resend: found means sent,
 * not found means it is sent again; only when Sent Items cannot be read does the message wait for an
 * operator (outbox state `uncertain`).
 */
export async function startSpool(options: {
  spool: SpoolInput;
  m365: () => M365Connection;
  ca?: string;
  credentials: () => Credentials;
  delivery: Delivery;
  metrics: BridgeMetrics;
  logger: Logger;
  /**
   * A message became `failed` (not an operator's discard) or `uncertain`: the device was told 250, so
   * only a person can still act (resend from the device, or `bridge spool retry|discard`).
   */
  onNeedsAPerson?: (entry: OutboxEntry) => void;
}): Promise<Spool> {
  const log = options.logger;
  const readers = new Map<string, SentItemsIndex>();

  async function sentItemsFor(account: string): Promise<SentItemsIndex> {
    let index = readers.get(account);
    if (!index) {
      const signedIn = await options.credentials().signInWithoutPassword(account, "smtp");
      const m365 = options.m365();
      const mailbox = createMailbox({
        auth: signedIn.auth,
        transports: [
          graphTransport({
            auth: signedIn.auth,
            mailbox: signedIn.mailbox,
            ...(m365.graphOrigin ? { baseUrl: m365.graphOrigin } : {}),
            ...(options.ca ? { ca: options.ca } : {}),
          }),
        ],
      });
      index = sentItemsIndex(mailbox, "graph", {
        missingReaderHint:
          "Grant the app Mail.Read so the bridge can check Sent Items, then retry or discard the message.",
      });
      readers.set(account, index);
    }
    return index;
  }

  const dailyLimitRetryMs = (options.spool.dailyLimitRetrySeconds ?? 900) * 1_000;
  const deliver: Deliver<SpoolPayload> = async (job, signal) => {
    const { payload } = job.message;
    try {
      if (job.uncertain) {
        let found: boolean;
        try {
          const index = await sentItemsFor(payload.account);
          found = await index.has(job.message.messageId, job.since, job.claimedAt);
        } catch (error) {
          // The Sent Items check itself failed: without it a resend might deliver twice. The message
          // stays uncertain, so the next attempt checks again before anything is sent.
          const outcome = failureOutcome(error);
          if (isM365MailError(error) && error.code === "NOT_SUPPORTED")
            return { ...outcome, maybeSubmitted: true, undecidable: true };
          return {
            ...outcome,
            maybeSubmitted: true,
            retryable: outcome.retryable || heldForAPerson(error),
          };
        }
        if (found) {
          log.info(`spool: ${job.message.messageId} is in Sent Items; not sending it again`);
          return { ok: true, transport: "sent-items", recovered: true };
        }
        log.warn(`spool: ${job.message.messageId} is not in Sent Items; sending it again`);
      }
      const account = options.credentials().account(payload.account);
      if (!account) {
        throw new M365MailError(
          "CONFIG_INVALID",
          `spool: account ${payload.account} is no longer configured`,
          {
            source: "bridge",
            hint: "Put the account back into accounts[] (the message stays in the spool until it fails).",
          },
        );
      }
      const signedIn = await options.credentials().signInWithoutPassword(payload.account, "smtp");
      const result = await options.delivery.deliver(
        {
          signedIn,
          account,
          mailFrom: payload.mailFrom,
          recipients: payload.recipients,
          raw: job.message.raw!,
        },
        signal,
      );
      return { ok: true, transport: result.route, recovered: job.uncertain };
    } catch (error) {
      const outcome = failureOutcome(error);
      if (isDailySendingLimit(error)) {
        // Not a refusal of this message: Exchange takes it once the rolling 24 hours free up.
        log.warn(
          `spool: ${job.message.messageId} of account ${payload.account} waits: the mailbox reached Microsoft 365's daily sending limit (10,000 recipients in 24 hours); trying again in ${Math.round(dailyLimitRetryMs / 1000)} s`,
        );
        return { ...outcome, retryable: true, retryAfterMs: dailyLimitRetryMs };
      }
      if (!outcome.retryable && heldForAPerson(error)) {
        log.warn(
          `spool: ${job.message.messageId} of account ${payload.account} is held until a person fixes ${(error as M365MailError).code} (m365-mail bridge status); retrying`,
        );
        return { ...outcome, retryable: true };
      }
      return outcome;
    }
  };

  const firstRetryMs = options.spool.firstRetryMs ?? 2_000;
  const common = {
    deliver,
    // Microsoft's per-mailbox limits, kept for all spooled accounts together (a safe upper bound).
    concurrency: { graph: 4, smtp: 3 },
    // Like a mail server's queue lifetime: an outage or a sign-in problem of hours loses nothing.
    maxAttempts: attemptsToRetryFor((options.spool.maxQueueHours ?? 120) * 3_600_000, firstRetryMs),
    retryBaseMs: firstRetryMs,
    sentItemsGraceMs: (options.spool.sentItemsGraceSeconds ?? 30) * 1_000,
    logger: log,
    settingNames: { path: "spool.path", redisUrl: "spool.url", redis: 'spool { "type": "redis" }' },
  };
  const outbox: Outbox<SpoolPayload> =
    options.spool.type === "sqlite"
      ? sqliteOutbox<SpoolPayload>({ ...common, path: options.spool.path })
      : redisOutbox<SpoolPayload>({ ...common, redisUrl: options.spool.url, perMinute: { smtp: 30 } });
  let counts: SpoolCounts = { queued: 0, sending: 0, uncertain: 0, failed: 0 };
  /**
   * When the oldest message still queued or being sent was accepted: what an operator alerts on (its
   * age: time() minus the gauge). Up to 1,000 of each state are read: past that it is at least this old.
   */
  const oldestPending = async (c: Record<OutboxState, number>) => {
    let oldest = Number.POSITIVE_INFINITY;
    for (const state of ["queued", "sending"] as const) {
      if (c[state] === 0) continue;
      for (const entry of await outbox.list({ state, limit: 1000 }))
        oldest = Math.min(oldest, Date.parse(entry.createdAt));
    }
    return Number.isFinite(oldest) ? oldest : undefined;
  };
  // Listing is dearer than counting (on Redis, a read per job): during a burst, at most every 5 s. It only
  // moves when messages change state, so a later change brings it up to date.
  let oldest: { since: number | undefined; readAt: number } = { since: undefined, readAt: 0 };
  const readState = async () => {
    const c = await outbox.counts();
    if (c.queued + c.sending === 0) oldest = { since: undefined, readAt: 0 };
    else if (oldest.since === undefined || Date.now() - oldest.readAt >= 5_000)
      oldest = { since: await oldestPending(c), readAt: Date.now() };
    const { since } = oldest;
    counts = {
      ...(since ? { oldestPendingSince: new Date(since).toISOString() } : {}),
      queued: c.queued,
      sending: c.sending,
      uncertain: c.uncertain,
      failed: c.failed,
    };
    options.metrics.set("m365_bridge_spool_pending", {}, c.queued + c.sending + c.uncertain);
    for (const state of ["queued", "sending", "uncertain", "failed"] as const)
      options.metrics.set("m365_bridge_spool_messages", { state }, c[state]);
    options.metrics.set(
      "m365_bridge_spool_oldest_pending_timestamp_seconds",
      {},
      since ? Math.floor(since / 1000) : 0,
    );
  };
  // A burst of 200 messages is 600 changes: they share reads, one at a time, the last one after the burst.
  let refreshing: Promise<void> | undefined;
  let again = false;
  const refresh = (): Promise<void> => {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = readState()
      .catch(() => undefined)
      .then(() => {
        refreshing = undefined;
        if (!again) return;
        again = false;
        return refresh();
      });
    return refreshing;
  };
  outbox.events.on("change", (entry: OutboxEntry) => {
    void refresh();
    const operatorsOwn = entry.error?.code === "DISCARDED";
    if ((entry.state === "failed" && !operatorsOwn) || entry.state === "uncertain")
      options.onNeedsAPerson?.(entry);
  });
  await outbox.start();
  await refresh();

  return {
    async accept(message) {
      const { raw, messageId } = withMessageId(message.raw, message.signedIn.mailbox);
      await outbox.accept({
        message: {
          messageId,
          lane: message.account.delivery === "smtp" ? "smtp" : "graph",
          via: message.account.delivery,
          subject: subjectOf(raw),
          owner: message.account.name,
          payload: {
            account: message.account.name,
            mailFrom: message.mailFrom,
            recipients: message.recipients,
          },
          raw,
        },
      });
      return messageId;
    },
    counts: () => counts,
    async list({ state, limit }) {
      if (state) return outbox.list({ state, limit });
      const open = await Promise.all(
        (["uncertain", "failed", "queued", "sending"] as const).map((s) => outbox.list({ state: s, limit })),
      );
      return open
        .flat()
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
        .slice(0, limit);
    },
    resolve: (id, action) => outbox.resolve(id, action),
    async wake(account) {
      let woken = 0;
      for (const entry of await outbox.list({ state: "queued", owner: account, limit: 1000 })) {
        try {
          await outbox.resolve(entry.id, "retry");
          woken++;
        } catch {
          // A worker took it meanwhile: it is on its way anyway.
        }
      }
      if (woken > 0) log.info(`spool: ${woken} message(s) held for account ${account} go out now`);
      return woken;
    },
    close: () => outbox.close(),
  };
}

function subjectOf(raw: Buffer): string | undefined {
  const header = raw.subarray(0, findHeaderEnd(raw)).toString("utf8");
  return /^subject:[ \t]*(.*)$/im.exec(header)?.[1]?.slice(0, 200);
}
