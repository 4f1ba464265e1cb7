import { createHash, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { type Logger, M365MailError } from "@m365-mail/core";
import { DelayedError, Job, type JobType, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { backoffMs, type Deliver } from "./delivery.js";
import type {
  AcceptResult,
  Outbox,
  OutboxEntry,
  OutboxError,
  OutboxSettingNames,
  OutboxState,
  ResolveAction,
  StoredOutboxMessage,
} from "./outbox.js";
import {
  DISCARDED,
  DISCARDED_QUEUED,
  idempotencyConflict,
  notFound,
  notSettleable,
  settingNames,
  unknownLane,
} from "./store-errors.js";

export interface RedisOutboxOptions<P = unknown> {
  /** redis://… of a Redis run with `appendonly yes` and `appendfsync always` (see the README). */
  redisUrl: string;
  deliver: Deliver<P>;
  /** Deliveries at once per lane across ALL processes (BullMQ global concurrency); keys are the lanes. */
  concurrency: Readonly<Record<string, number>>;
  /** Messages per minute per lane across all processes (BullMQ global rate limit); a lane not named: no limit. */
  perMinute?: Readonly<Record<string, number>>;
  maxAttempts: number;
  retryBaseMs: number;
  sentItemsGraceMs: number;
  logger: Logger;
  /** Queue name prefix. @default "m365-mail-outbox" */
  prefix?: string;
  /** Sent and failed messages are kept this long (status, idempotency replays). @default 30 days */
  retentionMs?: number;
  /**
   * How long a worker's claim on a job lasts without renewal; a job whose process died is taken over
   * after at most about twice this (BullMQ's lock duration and stalled-job check interval).
   * @default 30000
   */
  lockDurationMs?: number;
  /** Your setting names, for error hints. */
  settingNames?: OutboxSettingNames;
}

interface JobData<P> {
  messageId: string;
  via: string;
  subject?: string;
  owner?: string;
  payload: P;
  /** The raw bytes live in their own key (`<prefix>:raw:<id>`), not in the job's JSON. */
  hasRaw?: boolean;
  fingerprint: string;
  createdAt: number;
  firstAttemptAt?: number;
  attemptStartedAt?: number;
  /** Set before each attempt and cleared only when an attempt provably submitted nothing. */
  uncertain?: boolean;
  /** Failed in BullMQ's terms, `uncertain` in ours: waiting for an operator, payload kept. */
  parked?: boolean;
  /** An operator discarded it while queued (MARK_IF_QUEUED): the worker that takes it fails it unsent. */
  discarded?: boolean;
  lastError?: OutboxError;
}

interface JobResult {
  transport: string;
  sentAt: number;
  recovered: boolean;
}

/**
 * Marks job ARGV[1] (its hash KEYS[5]) `discarded` in its data only while it waits in the wait, paused,
 * delayed or prioritized set: no worker holds it, and the one that takes it reads the mark with the data
 * (no extra Redis call per attempt). The data is our JSON object, so the mark is appended before its "}".
 */
const MARK_IF_QUEUED = `
if redis.call("LPOS", KEYS[1], ARGV[1]) or redis.call("LPOS", KEYS[2], ARGV[1])
  or redis.call("ZSCORE", KEYS[3], ARGV[1]) or redis.call("ZSCORE", KEYS[4], ARGV[1]) then
  local data = redis.call("HGET", KEYS[5], "data")
  redis.call("HSET", KEYS[5], "data", string.sub(data, 1, -2) .. ',"discarded":true}')
  return 1
end
return 0`;

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

const TYPES_OF: Record<Exclude<OutboxState, "uncertain">, JobType[]> = {
  queued: ["waiting", "delayed", "prioritized", "paused"],
  sending: ["active"],
  sent: ["completed"],
  failed: ["failed"],
};

/** What an idempotency key maps to. Keys written before fingerprints were stored hold the id alone. */
interface IdempotencyClaim {
  id: string;
  fingerprint?: string;
}

function readClaim(value: string | null): IdempotencyClaim | undefined {
  if (value === null) return undefined;
  if (!value.startsWith("{")) return { id: value };
  const parsed = JSON.parse(value) as IdempotencyClaim;
  return typeof parsed.id === "string" ? parsed : undefined;
}

class RetryableDeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

/**
 * The outbox on Redis with BullMQ, for several processes: each runs workers, and the per-mailbox limits
 * hold for the whole fleet (global concurrency per lane, a global rate). A job whose worker died is
 * taken over by another worker (BullMQ's stalled-job check); the Message-ID is then looked up in Sent
 * Items before any resend, as with SQLite. Durability is Redis's: run it with `appendonly yes` and
 * `appendfsync always` for "stored before accept() resolves" to survive a Redis crash.
 */
export function redisOutbox<P = unknown>(options: RedisOutboxOptions<P>): Outbox<P> {
  const { deliver, logger } = options;
  const names = settingNames(options.settingNames);
  const prefix = options.prefix ?? "m365-mail-outbox";
  const lanes = Object.keys(options.concurrency);
  for (const lane of lanes) {
    if (!/^[a-z0-9-]+$/i.test(lane)) throw unknownLane(lane, ["names of letters, digits and '-'"]);
  }
  const retention = options.retentionMs ?? 30 * 86_400_000;
  const events = new EventEmitter();
  // No offline queue (BullMQ's "failing fast when Redis is down"): while Redis is unreachable, accept()
  // is refused at once — a 503 or a 451 the client retries — instead of waiting, unanswered, for Redis.
  const connection = new Redis(options.redisUrl, {
    maxRetriesPerRequest: null,
    lazyConnect: false,
    enableOfflineQueue: false,
  });
  connection.on("error", (error) => logger.warn("Redis connection error", { error: String(error) }));
  const queues: Record<string, Queue<JobData<P>, JobResult>> = Object.fromEntries(
    lanes.map((lane) => [lane, new Queue<JobData<P>, JobResult>(`${prefix}-${lane}`, { connection })]),
  );
  const workers: Worker<JobData<P>, JobResult>[] = [];
  let pruneTimer: NodeJS.Timeout | undefined;
  const idemKey = (key: string) => `${prefix}:idempotency:${createHash("sha256").update(key).digest("hex")}`;
  const rawKey = (id: string) => `${prefix}:raw:${id}`;
  const uncertainKey = `${prefix}:uncertain`;
  const laneOf = (id: string): string | undefined => {
    const lane = id.slice(0, id.indexOf("."));
    return queues[lane] ? lane : undefined;
  };
  const jobOf = async (id: string) => {
    const lane = laneOf(id);
    return lane ? Job.fromId<JobData<P>, JobResult>(queues[lane]!, id) : undefined;
  };

  const toEntry = async (job: Job<JobData<P>, JobResult>, known?: OutboxState): Promise<OutboxEntry> => {
    let state = known ?? STATE_OF[await job.getState()] ?? "queued";
    if ((state === "sent" || state === "failed") && !job.finishedOn) {
      // It finished between reading the job and reading its state: read it again for its result or error.
      job = (await jobOf(job.id!)) ?? job;
    }
    const d = job.data;
    if (state === "failed" && d.parked) state = "uncertain";
    const result = job.returnvalue as JobResult | null | undefined;
    const updated = job.finishedOn ?? job.processedOn ?? job.timestamp;
    return {
      id: job.id!,
      state,
      messageId: d.messageId,
      via: d.via,
      ...(d.subject ? { subject: d.subject } : {}),
      ...(d.owner ? { owner: d.owner } : {}),
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
    // Kept for status and idempotent replays; the idempotency-key map lives shorter (1 day).
    removeOnComplete: { age: Math.ceil(retention / 1000) },
    // Failed jobs are pruned here, not by BullMQ: BullMQ's age rule would also remove uncertain ones.
    removeOnFail: false,
  };

  const storeFailure = (error: unknown) =>
    new M365MailError("SERVER_ERROR", "the Redis outbox could not store the message", {
      source: "outbox",
      cause: error,
      retryable: true,
      // Service Unavailable: try again (with the same Idempotency-Key, a message Redis did store after
      // all is answered from there, not stored twice).
      status: 503,
      retryAfterSeconds: 5,
      hint: `Check that Redis is reachable at ${names.redisUrl}.`,
    });

  // Without an offline queue a command fails while the connection is down — what accept() should do
  // in an outage — but also while it is first being made: until it was ready once, calls wait for it.
  let firstConnection: Promise<void> | undefined;
  let everReady = connection.status === "ready";
  connection.once("ready", () => {
    everReady = true;
  });
  const connected = (): Promise<void> => {
    if (everReady) return Promise.resolve();
    firstConnection ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(storeFailure(new Error("no connection within 10 s"))), 10_000);
      timer.unref();
      connection.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return firstConnection;
  };

  const processJob = async (job: Job<JobData<P>, JobResult>, token?: string): Promise<JobResult> => {
    const data = job.data;
    if (data.discarded) {
      await job.updateData({ ...data, lastError: { ...DISCARDED_QUEUED } });
      await connection.del(rawKey(job.id!));
      throw new UnrecoverableError(DISCARDED_QUEUED.message);
    }
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
    let raw: Buffer | undefined;
    if (data.hasRaw) {
      raw = (await connection.getBuffer(rawKey(job.id!))) ?? undefined;
      if (!raw) throw new UnrecoverableError("the message's raw bytes are gone from Redis");
    }
    const message: StoredOutboxMessage<P> = {
      messageId: data.messageId,
      via: data.via,
      ...(data.subject ? { subject: data.subject } : {}),
      payload: data.payload,
      ...(raw ? { raw } : {}),
    };
    const outcome = await deliver({
      message,
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
    const final = outcome.undecidable || !outcome.retryable || job.attemptsMade + 1 >= options.maxAttempts;
    if (final && outcome.maybeSubmitted && !outcome.undecidable && !uncertain) {
      // A send that may have reached Microsoft and will not be tried again still gets its Sent Items
      // check (an uncertain attempt only looks, never sends). Delayed, not failed: no attempt is used.
      await job.updateData({ ...job.data, uncertain: true, lastError });
      events.emit("delivery", { result: "retry", code: error.code });
      logger.warn("a delivery attempt may have reached Microsoft: checking Sent Items", {
        id: job.id,
        code: error.code,
      });
      await job.moveToDelayed(now + options.sentItemsGraceMs, token);
      throw new DelayedError();
    }
    const park = final && outcome.maybeSubmitted;
    await job.updateData({
      ...job.data,
      uncertain: outcome.maybeSubmitted,
      lastError,
      ...(park ? { parked: true } : {}),
    });
    if (park) {
      // It may have been delivered: neither "failed" nor a blind resend, but a person's decision.
      await connection.sadd(uncertainKey, job.id!);
      events.emit("delivery", { result: "uncertain", code: error.code });
      logger.error("delivery uncertain: left to an operator (retry or discard)", {
        id: job.id,
        code: error.code,
        message: error.message,
      });
      throw new UnrecoverableError(error.message);
    }
    events.emit("delivery", { result: final ? "failed" : "retry", code: error.code });
    if (final) throw new UnrecoverableError(error.message);
    const wait = outcome.maybeSubmitted
      ? Math.max(outcome.retryAfterMs ?? 0, options.sentItemsGraceMs)
      : outcome.retryAfterMs;
    throw new RetryableDeliveryError(error.message, wait);
  };

  /** Failed (never uncertain) and completed jobs past the retention, with their raw bytes. */
  const prune = async () => {
    const before = Date.now() - retention;
    for (const queue of Object.values(queues)) {
      for (const job of await queue.getJobs(["failed"], 0, 999, true)) {
        if (job.data.parked || (job.finishedOn ?? 0) >= before) continue;
        await job.remove().catch(() => undefined);
        await connection.del(rawKey(job.id!));
      }
    }
  };

  /**
   * A queued job: `retry` promotes it from its backoff delay (a waiting one goes as soon as a worker is
   * free anyway); `discard` marks it in one script that also checks it is still waiting or delayed — so
   * no worker holds it — and the worker that takes it next fails it as DISCARDED without sending.
   */
  async function resolveQueued(job: Job<JobData<P>, JobResult>, action: ResolveAction): Promise<OutboxEntry> {
    const id = job.id!;
    if (action === "discard") {
      const queue = queues[laneOf(id)!]!;
      const { keys } = queue;
      const marked = (await connection.eval(
        MARK_IF_QUEUED,
        5,
        keys.wait!,
        keys.paused!,
        keys.delayed!,
        keys.prioritized!,
        queue.toKey(id),
        id,
      )) as number;
      if (marked !== 1) throw notSettleable((await toEntry((await jobOf(id)) ?? job)).state);
    }
    // Promoted either way: a discarded job is then failed at once, a retried one attempted now.
    await job.promote().catch(() => undefined);
    logger.warn(`an operator chose to ${action} a queued message`, { id, messageId: job.data.messageId });
    const updated = await toEntry((await jobOf(id)) ?? job);
    events.emit("change", updated);
    return updated;
  }

  return {
    kind: "redis",
    events,
    async accept({ message, idempotencyKey }): Promise<AcceptResult> {
      await connected();
      const { lane } = message;
      if (!queues[lane]) throw unknownLane(lane, lanes);
      const data: JobData<P> = {
        messageId: message.messageId,
        via: message.via,
        ...(message.subject ? { subject: message.subject } : {}),
        ...(message.owner ? { owner: message.owner } : {}),
        payload: message.payload,
        ...(message.raw ? { hasRaw: true } : {}),
        fingerprint: message.fingerprint ?? "",
        createdAt: Date.now(),
      };
      let id = `${lane}.${randomUUID()}`;
      try {
        if (idempotencyKey) {
          const key = idemKey(idempotencyKey);
          // The key names the job AND the request's fingerprint, set together: a concurrent request
          // with another body is refused (409) even before the first one's job is stored.
          const claim: IdempotencyClaim = { id, fingerprint: data.fingerprint };
          const claimed = await connection.set(key, JSON.stringify(claim), "EX", 86_400, "NX");
          if (claimed !== "OK") {
            const stored = readClaim(await connection.get(key)) ?? claim;
            if (stored.fingerprint !== undefined && stored.fingerprint !== data.fingerprint)
              throw idempotencyConflict();
            const existing = await jobOf(stored.id);
            if (existing) {
              if (existing.data.fingerprint !== data.fingerprint) throw idempotencyConflict();
              return { entry: await toEntry(existing), replayed: true };
            }
            // The same message, claimed by a request still storing it or one that died before it
            // did: store it under that id (BullMQ ignores a second add with the same jobId).
            id = `${lane}.${stored.id.slice(stored.id.indexOf(".") + 1)}`;
          }
        }
        // Bytes first: a job never exists without them.
        if (message.raw)
          await connection.set(
            rawKey(id),
            Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength),
          );
        // BullMQ ignores a second add with the same jobId: replays after a crash cannot duplicate.
        const job = await queues[lane]!.add("send", data, { ...jobOptions, jobId: id });
        const entry = await toEntry(job, "queued");
        events.emit("change", entry);
        return { entry, replayed: false };
      } catch (error) {
        if (error instanceof M365MailError) throw error;
        throw storeFailure(error);
      }
    },
    async get(id) {
      await connected();
      const job = await jobOf(id);
      return job ? toEntry(job) : undefined;
    },
    async list({ limit, state, owner, after }) {
      await connected();
      // The newest `depth` of each queue and type hold the newest `depth` overall.
      const depth = (after?.position ?? 0) + limit;
      let jobs: Job<JobData<P>, JobResult>[];
      if (state === "uncertain") {
        const ids = await connection.smembers(uncertainKey);
        jobs = (await Promise.all(ids.map(jobOf))).filter((j): j is Job<JobData<P>, JobResult> => !!j);
      } else {
        const types = state ? TYPES_OF[state] : (Object.values(TYPES_OF).flat() as JobType[]);
        jobs = (
          await Promise.all(Object.values(queues).map((q) => q.getJobs(types, 0, depth - 1, false)))
        ).flat();
        if (state === "failed") jobs = jobs.filter((j) => !j.data.parked);
      }
      // BullMQ has no index by owner: the newest `limit` jobs of each type are read, then filtered, so
      // an owner's older messages may be missing here while other owners send a lot (GET by id finds them).
      if (owner !== undefined) jobs = jobs.filter((j) => j.data.owner === owner);
      jobs.sort((a, b) => b.timestamp - a.timestamp);
      if (after) {
        const at = jobs.findIndex((j) => j.id === after.id);
        // Gone since (pruned): fall back to the position, which is where it was.
        jobs = jobs.slice(at >= 0 ? at + 1 : after.position);
      }
      return Promise.all(jobs.slice(0, limit).map((job) => toEntry(job)));
    },
    async counts() {
      await connected();
      const out: Record<OutboxState, number> = { queued: 0, sending: 0, sent: 0, failed: 0, uncertain: 0 };
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
      out.uncertain = await connection.scard(uncertainKey);
      // Parked jobs sit in BullMQ's failed set; a job being parked right now may not be there yet.
      out.failed = Math.max(0, out.failed - out.uncertain);
      return out;
    },
    async resolve(id: string, action: ResolveAction) {
      await connected();
      const job = await jobOf(id);
      if (!job) throw notFound(id);
      const entry = await toEntry(job);
      if (entry.state === "queued") return resolveQueued(job, action);
      if (entry.state !== "uncertain") throw notSettleable(entry.state);
      if (action === "retry") {
        const { attemptStartedAt: _started, lastError: _error, ...rest } = job.data;
        await job.updateData({ ...rest, parked: false, uncertain: false });
        // The operator checked that it was not delivered: a fresh send with a fresh attempt budget.
        await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
      } else {
        await job.updateData({ ...job.data, parked: false, lastError: { ...DISCARDED } });
        await connection.del(rawKey(id));
      }
      await connection.srem(uncertainKey, id);
      logger.warn(`an operator chose to ${action} an uncertain message`, { id, messageId: entry.messageId });
      const updated = await toEntry((await jobOf(id)) ?? job);
      events.emit("change", updated);
      return updated;
    },
    async start() {
      // Workers wait for Redis to come back (only producers fail fast); the outbox's own connection
      // already logs an outage, so theirs are not logged again.
      const workerConnection = () =>
        connection
          .duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true })
          .on("error", () => undefined);
      await connected();
      for (const lane of lanes) {
        await queues[lane]!.setGlobalConcurrency(options.concurrency[lane]!);
        const perMinute = options.perMinute?.[lane] ?? 0;
        if (perMinute > 0) await queues[lane]!.setGlobalRateLimit(perMinute, 60_000);
        const worker = new Worker<JobData<P>, JobResult>(queues[lane]!.name, processJob, {
          connection: workerConnection(),
          concurrency: options.concurrency[lane]!,
          // A job whose process died is retried, never failed for stalling: it goes through the Sent Items check.
          maxStalledCount: 1000,
          lockDuration: options.lockDurationMs ?? 30_000,
          stalledInterval: options.lockDurationMs ?? 30_000,
          settings: {
            backoffStrategy: (attemptsMade, _type, error) =>
              Math.max(
                backoffMs(attemptsMade, options.retryBaseMs),
                (error as RetryableDeliveryError | undefined)?.retryAfterMs ?? 0,
              ),
          },
        });
        worker.on("completed", async (job) => {
          if (job.data.hasRaw) await connection.del(rawKey(job.id!)).catch(() => undefined);
          events.emit("change", await toEntry(job, "sent"));
        });
        worker.on("failed", async (job) => {
          if (!job) return;
          const entry = await toEntry(job).catch(() => toEntry(job, "queued"));
          if (entry.state === "failed" && job.data.hasRaw)
            await connection.del(rawKey(job.id!)).catch(() => undefined);
          events.emit("change", entry);
        });
        worker.on("error", (error) => logger.warn("outbox worker error", { error: String(error) }));
        workers.push(worker);
      }
      pruneTimer = setInterval(() => {
        prune().catch((error) => logger.warn("could not prune the outbox", { error: String(error) }));
      }, 3_600_000);
      pruneTimer.unref();
    },
    async check() {
      await connected();
      await connection.ping();
    },
    async close() {
      clearInterval(pruneTimer);
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled(Object.values(queues).map((q) => q.close()));
      await connection.quit().catch(() => undefined);
    },
  };
}
