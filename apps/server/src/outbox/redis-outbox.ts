import { createHash, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { type Logger, M365MailError } from "@m365-mail/core";
import { DelayedError, Job, type JobType, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { SendVia, StoredMessage } from "../send-request.js";
import { backoffMs, type Deliver } from "./delivery.js";
import {
  type AcceptResult,
  idempotencyConflict,
  type Outbox,
  type OutboxEntry,
  type OutboxError,
  type OutboxState,
} from "./outbox.js";

export interface RedisOutboxOptions {
  redisUrl: string;
  deliver: Deliver;
  /** Deliveries at once per lane across ALL processes (BullMQ global concurrency). */
  concurrency: { graph: number; smtp: number };
  /** SMTP messages per minute across all processes; 0: no limit. */
  smtpPerMinute: number;
  maxAttempts: number;
  retryBaseMs: number;
  sentItemsGraceMs: number;
  logger: Logger;
  /** Queue name prefix. @default "m365-mail-outbox" */
  prefix?: string;
}

type Lane = "graph" | "smtp";

interface JobData {
  message: StoredMessage;
  via: SendVia;
  fingerprint: string;
  subject?: string;
  createdAt: number;
  firstAttemptAt?: number;
  attemptStartedAt?: number;
  /** Set before each attempt and cleared only when an attempt provably submitted nothing. */
  uncertain?: boolean;
  lastError?: OutboxError;
}

interface JobResult {
  transport: string;
  sentAt: number;
  recovered: boolean;
}

const STATE_OF: Record<string, OutboxState> = {
  completed: "sent",
  failed: "failed",
  active: "sending",
  waiting: "queued",
  delayed: "queued",
  prioritized: "queued",
  "waiting-children": "queued",
  wait: "queued",
  paused: "queued",
};

const TYPES_OF: Record<OutboxState, JobType[]> = {
  queued: ["waiting", "delayed", "prioritized", "paused"],
  sending: ["active"],
  sent: ["completed"],
  failed: ["failed"],
};

class RetryableDeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

/**
 * The outbox on Redis with BullMQ, for several server processes: each process runs workers, and the
 * per-mailbox limits hold for the whole fleet (global concurrency per lane, a global SMTP rate). A job
 * whose worker died is taken over by another worker (BullMQ's stalled-job check); the Message-ID is
 * then looked up in Sent Items before any resend, as with SQLite. Durability is Redis's: run it with
 * `appendonly yes` and `appendfsync always` for "stored before 202" to survive a Redis crash.
 */
export function redisOutbox(options: RedisOutboxOptions): Outbox {
  const { deliver, logger } = options;
  const prefix = options.prefix ?? "m365-mail-outbox";
  const events = new EventEmitter();
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
  connection.on("error", (error) => logger.warn("Redis connection error", { error: String(error) }));
  const queues: Record<Lane, Queue<JobData, JobResult>> = {
    graph: new Queue(`${prefix}-graph`, { connection }),
    smtp: new Queue(`${prefix}-smtp`, { connection }),
  };
  const workers: Worker<JobData, JobResult>[] = [];
  const idemKey = (key: string) => `${prefix}:idempotency:${createHash("sha256").update(key).digest("hex")}`;
  const laneOf = (id: string): Lane | undefined =>
    id.startsWith("graph.") ? "graph" : id.startsWith("smtp.") ? "smtp" : undefined;

  const toEntry = async (job: Job<JobData, JobResult>, known?: OutboxState): Promise<OutboxEntry> => {
    const state = known ?? STATE_OF[await job.getState()] ?? "queued";
    if ((state === "sent" || state === "failed") && !job.finishedOn) {
      // It finished between reading the job and reading its state: read it again for its result or error.
      job = (await Job.fromId<JobData, JobResult>(queues[laneOf(job.id!)!], job.id!)) ?? job;
    }
    const d = job.data;
    const result = job.returnvalue as JobResult | null | undefined;
    const updated = job.finishedOn ?? job.processedOn ?? job.timestamp;
    return {
      id: job.id!,
      state,
      messageId: d.message.messageId,
      via: d.via,
      ...(d.subject ? { subject: d.subject } : {}),
      attempts: job.attemptsStarted ?? job.attemptsMade,
      createdAt: new Date(d.createdAt).toISOString(),
      updatedAt: new Date(updated).toISOString(),
      ...(state === "queued" && job.delay && job.attemptsMade > 0
        ? { nextAttemptAt: new Date(job.timestamp + job.delay).toISOString() }
        : {}),
      ...(state === "sent" && result
        ? { sentAt: new Date(result.sentAt).toISOString(), transport: result.transport }
        : {}),
      ...(d.lastError && state !== "sent" ? { error: d.lastError } : {}),
    };
  };

  const jobOptions = {
    attempts: options.maxAttempts,
    backoff: { type: "outbox" },
    // Kept for status and idempotent replays; the Idempotency-Key map lives shorter (1 day).
    removeOnComplete: { age: 7 * 86_400 },
    removeOnFail: { age: 30 * 86_400 },
  };

  const add = async (id: string, data: JobData) => {
    const lane = laneOf(id)!;
    // BullMQ ignores a second add with the same jobId: replays after a crash cannot duplicate.
    return queues[lane].add("send", data, { ...jobOptions, jobId: id });
  };

  const processJob = async (job: Job<JobData, JobResult>, token?: string): Promise<JobResult> => {
    const data = job.data;
    const now = Date.now();
    const uncertain = data.attemptStartedAt !== undefined && data.uncertain !== false;
    if (uncertain && data.attemptStartedAt! + options.sentItemsGraceMs > now) {
      // Exchange files a sent message a moment after accepting it: look only once that moment passed.
      await job.moveToDelayed(data.attemptStartedAt! + options.sentItemsGraceMs, token);
      throw new DelayedError();
    }
    await job.updateData({
      ...data,
      attemptStartedAt: now,
      firstAttemptAt: data.firstAttemptAt ?? now,
      uncertain: true,
    });
    events.emit("change", await toEntry(job, "sending"));
    const outcome = await deliver({
      message: data.message,
      via: data.via,
      uncertain,
      since: data.firstAttemptAt ?? data.createdAt,
      claimedAt: now,
    });
    if (outcome.ok) {
      events.emit("delivery", { result: "sent", transport: outcome.transport });
      if (uncertain)
        events.emit("recovered", { outcome: outcome.recovered ? "found-in-sent-items" : "resent" });
      return { transport: outcome.transport, sentAt: Date.now(), recovered: outcome.recovered };
    }
    const { error } = outcome;
    const lastError: OutboxError = {
      code: error.code,
      message: error.message,
      ...(error.hint ? { hint: error.hint } : {}),
    };
    await job.updateData({ ...job.data, uncertain: outcome.maybeSubmitted, lastError });
    const final = !outcome.retryable || job.attemptsMade + 1 >= options.maxAttempts;
    events.emit("delivery", { result: final ? "failed" : "retry", code: error.code });
    if (!outcome.retryable) throw new UnrecoverableError(error.message);
    const wait = outcome.maybeSubmitted
      ? Math.max(outcome.retryAfterMs ?? 0, options.sentItemsGraceMs)
      : outcome.retryAfterMs;
    throw new RetryableDeliveryError(error.message, wait);
  };

  return {
    kind: "redis",
    events,
    async accept({ prepared, idempotencyKey }): Promise<AcceptResult> {
      const lane: Lane = prepared.via === "smtp" ? "smtp" : "graph";
      const data: JobData = {
        message: prepared.message,
        via: prepared.via,
        fingerprint: prepared.fingerprint,
        ...(prepared.message.subject ? { subject: prepared.message.subject } : {}),
        createdAt: Date.now(),
      };
      let id = `${lane}.${randomUUID()}`;
      try {
        if (idempotencyKey) {
          const key = idemKey(idempotencyKey);
          const claimed = await connection.set(key, id, "EX", 86_400, "NX");
          if (claimed !== "OK") {
            const existingId = (await connection.get(key)) ?? id;
            const existing = laneOf(existingId)
              ? await Job.fromId<JobData, JobResult>(queues[laneOf(existingId)!], existingId)
              : undefined;
            if (existing) {
              if (existing.data.fingerprint !== prepared.fingerprint) {
                throw idempotencyConflict();
              }
              return { entry: await toEntry(existing), replayed: true };
            }
            // The key was claimed by a request that died before storing its job: store it now.
            id = existingId;
            if (laneOf(id) !== lane) id = `${lane}.${id.slice(id.indexOf(".") + 1)}`;
          }
        }
        const job = await add(id, data);
        const entry = await toEntry(job, "queued");
        events.emit("change", entry);
        return { entry, replayed: false };
      } catch (error) {
        if (error instanceof M365MailError) throw error;
        throw new M365MailError("SERVER_ERROR", "the Redis outbox could not store the message", {
          source: "server",
          cause: error,
          retryable: true,
          hint: "Check that Redis is reachable at REDIS_URL.",
        });
      }
    },
    async get(id) {
      const lane = laneOf(id);
      if (!lane) return undefined;
      const job = await Job.fromId<JobData, JobResult>(queues[lane], id);
      return job ? toEntry(job) : undefined;
    },
    async list({ limit, state }) {
      const types = state ? TYPES_OF[state] : (Object.values(TYPES_OF).flat() as JobType[]);
      const jobs = (
        await Promise.all(Object.values(queues).map((q) => q.getJobs(types, 0, limit - 1, false)))
      ).flat();
      jobs.sort((a, b) => b.timestamp - a.timestamp);
      return Promise.all(jobs.slice(0, limit).map((job) => toEntry(job)));
    },
    async counts() {
      const out: Record<OutboxState, number> = { queued: 0, sending: 0, sent: 0, failed: 0 };
      for (const q of Object.values(queues)) {
        const c = await q.getJobCounts(
          "waiting",
          "delayed",
          "prioritized",
          "paused",
          "active",
          "completed",
          "failed",
        );
        out.queued += (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c.paused ?? 0);
        out.sending += c.active ?? 0;
        out.sent += c.completed ?? 0;
        out.failed += c.failed ?? 0;
      }
      return out;
    },
    async start() {
      await queues.graph.setGlobalConcurrency(options.concurrency.graph);
      await queues.smtp.setGlobalConcurrency(options.concurrency.smtp);
      if (options.smtpPerMinute > 0) await queues.smtp.setGlobalRateLimit(options.smtpPerMinute, 60_000);
      for (const lane of ["graph", "smtp"] as const) {
        const worker = new Worker<JobData, JobResult>(queues[lane].name, processJob, {
          connection: connection.duplicate({ maxRetriesPerRequest: null }),
          concurrency: options.concurrency[lane],
          // A job whose process died is retried, never failed for stalling: it goes through the Sent Items check.
          maxStalledCount: 1000,
          settings: {
            backoffStrategy: (attemptsMade, _type, error) =>
              Math.max(
                backoffMs(attemptsMade, options.retryBaseMs),
                (error as RetryableDeliveryError | undefined)?.retryAfterMs ?? 0,
              ),
          },
        });
        worker.on("completed", async (job) => events.emit("change", await toEntry(job, "sent")));
        worker.on("failed", async (job) => {
          if (job) events.emit("change", await toEntry(job).catch(() => toEntry(job, "queued")));
        });
        worker.on("error", (error) => logger.warn("outbox worker error", { error: String(error) }));
        workers.push(worker);
      }
    },
    async check() {
      await connection.ping();
    },
    async close() {
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled(Object.values(queues).map((q) => q.close()));
      await connection.quit().catch(() => undefined);
    },
  };
}
