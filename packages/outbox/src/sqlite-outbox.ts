import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type Logger, M365MailError } from "@m365-mail/core";
import Database from "better-sqlite3";
import { backoffMs, type Deliver, type DeliveryOutcome } from "./delivery.js";
import type {
  AcceptInput,
  AcceptResult,
  Outbox,
  OutboxEntry,
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
  shuttingDown,
  unknownLane,
} from "./store-errors.js";

export interface SqliteOutboxOptions<P = unknown> {
  /** The database file (created with its folder); ":memory:" for tests. */
  path: string;
  deliver: Deliver<P>;
  /**
   * Deliveries at once per lane; the keys are the lanes (`OutboxMessage.lane`). The server uses
   * { graph: 4, smtp: 3 }: Microsoft's per-mailbox limits.
   */
  concurrency: Readonly<Record<string, number>>;
  /** Attempts before a message that was certainly not submitted fails. */
  maxAttempts: number;
  /** First retry delay; doubles per attempt (with jitter), at most 5 minutes. */
  retryBaseMs: number;
  /**
   * An attempt that may have reached Microsoft is checked in Sent Items no earlier than this after it
   * started (Exchange files the copy a moment after accepting). Not found by then: `uncertain`.
   */
  sentItemsGraceMs: number;
  /** @default "FULL" — "NORMAL" may lose the last accepted messages on a power cut (not on a crash). */
  synchronous?: "FULL" | "NORMAL";
  logger: Logger;
  /** How often due retries are looked for. @default 250 */
  pollIntervalMs?: number;
  /** Rows of sent and failed messages are kept this long (idempotency replays, status). @default 30 days */
  retentionMs?: number;
  /** Your setting names, for error hints. */
  settingNames?: OutboxSettingNames;
}

interface Row {
  id: string;
  idempotency_key: string | null;
  fingerprint: string;
  message_id: string;
  via: string;
  lane: string;
  subject: string | null;
  owner: string | null;
  payload: string | null;
  raw: Buffer | null;
  state: OutboxState;
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  first_attempt_at: number | null;
  attempt_started_at: number | null;
  uncertain: number;
  transport: string | null;
  error_code: string | null;
  error_message: string | null;
  error_hint: string | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT UNIQUE,
  fingerprint TEXT NOT NULL,
  message_id TEXT NOT NULL,
  via TEXT NOT NULL,
  lane TEXT NOT NULL,
  subject TEXT,
  owner TEXT,
  payload TEXT,
  raw BLOB,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_owner TEXT,
  first_attempt_at INTEGER,
  attempt_started_at INTEGER,
  uncertain INTEGER NOT NULL DEFAULT 0,
  transport TEXT,
  error_code TEXT,
  error_message TEXT,
  error_hint TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, lane, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_updated ON outbox (state, updated_at);
`;

const COLUMNS =
  "id, message_id, via, subject, owner, state, attempts, next_attempt_at, transport, error_code, error_message, error_hint, created_at, updated_at, sent_at";

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : undefined);

function toEntry(row: Partial<Row>): OutboxEntry {
  const r = row as Row;
  return {
    id: r.id,
    state: r.state,
    messageId: r.message_id,
    via: r.via,
    ...(r.subject ? { subject: r.subject } : {}),
    ...(r.owner ? { owner: r.owner } : {}),
    attempts: r.attempts,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    ...(r.state === "queued" && r.attempts > 0 ? { nextAttemptAt: iso(r.next_attempt_at) } : {}),
    ...(r.sent_at ? { sentAt: iso(r.sent_at) } : {}),
    ...(r.transport ? { transport: r.transport } : {}),
    ...(r.error_code
      ? {
          error: {
            code: r.error_code,
            message: r.error_message ?? "",
            ...(r.error_hint ? { hint: r.error_hint } : {}),
          },
        }
      : {}),
  };
}

function storeError(error: unknown, path: string, names: Required<OutboxSettingNames>): M365MailError {
  const busy = (error as { code?: string })?.code?.startsWith("SQLITE_BUSY");
  return new M365MailError(
    busy ? "CONFIG_INVALID" : "SERVER_ERROR",
    busy ? `the outbox ${path} is in use by another process` : "the outbox database failed",
    {
      source: "outbox",
      cause: error,
      hint: busy
        ? `One process per SQLite outbox: give each its own ${names.path}, or use ${names.redis} to run several.`
        : `Check the disk and the permissions of the file named by ${names.path}.`,
    },
  );
}

/**
 * The durable outbox on SQLite (WAL). A message is committed before `accept()` resolves; messages that
 * arrive together are committed in one transaction (one fsync for the group). One process owns the
 * file (exclusive locking mode), so at start every row still "sending" belongs to a run that died: it
 * is marked uncertain and checked in Sent Items first. Raw bytes go to a BLOB column.
 */
export function sqliteOutbox<P = unknown>(options: SqliteOutboxOptions<P>): Outbox<P> {
  const { path, deliver, logger } = options;
  const names = settingNames(options.settingNames);
  const lanes = Object.keys(options.concurrency);
  const events = new EventEmitter();
  const owner = randomUUID();
  let db: Database.Database;
  try {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: 3000 });
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.synchronous ?? "FULL"}`);
    db.exec(SCHEMA);
    // Files written before raw bytes were stored have no `raw` column.
    const columns = db.prepare<[], { name: string }>("PRAGMA table_info(outbox)").all();
    if (!columns.some((c) => c.name === "raw")) db.exec("ALTER TABLE outbox ADD COLUMN raw BLOB");
    // Files written before owners were stored: their messages have none.
    if (!columns.some((c) => c.name === "owner")) db.exec("ALTER TABLE outbox ADD COLUMN owner TEXT");
  } catch (error) {
    throw storeError(error, path, names);
  }

  const stmt = {
    byKey: db.prepare<[string], Row>(`SELECT ${COLUMNS}, fingerprint FROM outbox WHERE idempotency_key = ?`),
    byId: db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM outbox WHERE id = ?`),
    insert: db.prepare(
      `INSERT INTO outbox (id, idempotency_key, fingerprint, message_id, via, lane, subject, owner, payload, raw, state, next_attempt_at, created_at, updated_at)
       VALUES (@id, @idempotency_key, @fingerprint, @message_id, @via, @lane, @subject, @owner, @payload, @raw, 'queued', @now, @now, @now)`,
    ),
    claim: db.prepare<{ lane: string; n: number; now: number; owner: string }, Row>(
      `UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_owner = @owner,
         attempt_started_at = @now, first_attempt_at = coalesce(first_attempt_at, @now), updated_at = @now
       WHERE id IN (SELECT id FROM outbox WHERE state = 'queued' AND lane = @lane AND next_attempt_at <= @now
                    ORDER BY next_attempt_at, rowid LIMIT @n)
       RETURNING *`,
    ),
    sent: db.prepare(
      `UPDATE outbox SET state = 'sent', transport = @transport, sent_at = @now, updated_at = @now, uncertain = 0,
         lease_owner = NULL, payload = NULL, raw = NULL, error_code = NULL, error_message = NULL, error_hint = NULL
       WHERE id = @id RETURNING ${COLUMNS}`,
    ),
    retry: db.prepare(
      `UPDATE outbox SET state = 'queued', next_attempt_at = @next, uncertain = @uncertain, updated_at = @now,
         lease_owner = NULL, error_code = @code, error_message = @message, error_hint = @hint
       WHERE id = @id RETURNING ${COLUMNS}`,
    ),
    failed: db.prepare(
      `UPDATE outbox SET state = 'failed', updated_at = @now, lease_owner = NULL, payload = NULL, raw = NULL,
         error_code = @code, error_message = @message, error_hint = @hint
       WHERE id = @id RETURNING ${COLUMNS}`,
    ),
    // The payload stays: an operator may still send it.
    uncertain: db.prepare(
      `UPDATE outbox SET state = 'uncertain', uncertain = 1, updated_at = @now, lease_owner = NULL,
         error_code = @code, error_message = @message, error_hint = @hint
       WHERE id = @id RETURNING ${COLUMNS}`,
    ),
    // The operator checked that it was not delivered: a fresh send, without a Sent Items look-up.
    operatorRetry: db.prepare(
      `UPDATE outbox SET state = 'queued', uncertain = 0, attempts = 0, next_attempt_at = @now, updated_at = @now
       WHERE id = @id AND state = 'uncertain' RETURNING ${COLUMNS}`,
    ),
    // A queued message waits for its next attempt: now, then (its Sent Items check first, if one is due).
    retryNow: db.prepare(
      `UPDATE outbox SET next_attempt_at = @now, updated_at = @now
       WHERE id = @id AND state = 'queued' RETURNING ${COLUMNS}`,
    ),
    discard: db.prepare(
      `UPDATE outbox SET state = 'failed', updated_at = @now, payload = NULL, raw = NULL,
         error_code = @code, error_message = CASE state WHEN 'queued' THEN @queuedMessage ELSE @message END,
         error_hint = NULL
       WHERE id = @id AND state IN ('uncertain', 'queued') RETURNING ${COLUMNS}`,
    ),
    recover: db.prepare<{ grace: number }, Row>(
      `UPDATE outbox SET state = 'queued', uncertain = 1, lease_owner = NULL,
         next_attempt_at = coalesce(attempt_started_at, 0) + @grace
       WHERE state = 'sending' RETURNING ${COLUMNS}`,
    ),
    list: db.prepare<
      { limit: number; state: string | null; owner: string | null; after: string | null },
      Row
    >(
      `SELECT ${COLUMNS} FROM outbox WHERE (@state IS NULL OR state = @state) AND (@owner IS NULL OR owner = @owner)
         AND (@after IS NULL OR rowid < coalesce((SELECT rowid FROM outbox WHERE id = @after), -1))
       ORDER BY rowid DESC LIMIT @limit`,
    ),
    counts: db.prepare<[], { state: OutboxState; n: number }>(
      "SELECT state, count(*) AS n FROM outbox GROUP BY state",
    ),
    // Never an uncertain row: its payload waits for an operator.
    prune: db.prepare<{ before: number }>(
      "DELETE FROM outbox WHERE state IN ('sent', 'failed') AND updated_at < @before",
    ),
  };

  // ---- acceptance: group commit -------------------------------------------------------------
  interface Pending {
    input: AcceptInput<P>;
    resolve: (result: AcceptResult) => void;
    reject: (error: unknown) => void;
  }
  let pending: Pending[] = [];
  let flushScheduled = false;
  let closed = false;

  const insertOne = (input: AcceptInput<P>, now: number): AcceptResult | M365MailError => {
    const { message, idempotencyKey } = input;
    if (!lanes.includes(message.lane)) return unknownLane(message.lane, lanes);
    const fingerprint = message.fingerprint ?? "";
    if (idempotencyKey) {
      const existing = stmt.byKey.get(idempotencyKey);
      if (existing) {
        if (existing.fingerprint !== fingerprint) return idempotencyConflict();
        return { entry: toEntry(existing), replayed: true };
      }
    }
    const id = randomUUID();
    stmt.insert.run({
      id,
      idempotency_key: idempotencyKey ?? null,
      fingerprint,
      message_id: message.messageId,
      via: message.via,
      lane: message.lane,
      subject: message.subject ?? null,
      owner: message.owner ?? null,
      payload: JSON.stringify(message.payload ?? null),
      raw: message.raw
        ? Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength)
        : null,
      now,
    });
    return {
      entry: toEntry({
        id,
        state: "queued",
        message_id: message.messageId,
        via: message.via,
        subject: message.subject ?? null,
        owner: message.owner ?? null,
        attempts: 0,
        created_at: now,
        updated_at: now,
      }),
      replayed: false,
    };
  };

  const flush = () => {
    flushScheduled = false;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const now = Date.now();
    let results: Array<AcceptResult | M365MailError>;
    try {
      results = db.transaction(() => batch.map((p) => insertOne(p.input, now)))();
    } catch (error) {
      const failure = storeError(error, path, names);
      for (const p of batch) p.reject(failure);
      return;
    }
    // Committed (and fsynced with synchronous=FULL): only now may the callers answer.
    batch.forEach((p, i) => {
      const result = results[i]!;
      if (result instanceof M365MailError) p.reject(result);
      else {
        p.resolve(result);
        if (!result.replayed) events.emit("change", result.entry);
      }
    });
    schedulePump();
  };

  // ---- delivery -----------------------------------------------------------------------------
  const active: Record<string, number> = Object.fromEntries(lanes.map((lane) => [lane, 0]));
  const inflight = new Set<Promise<void>>();
  const controller = new AbortController();
  let pumpScheduled = false;
  let timer: NodeJS.Timeout | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;

  const finish = (row: Row, outcome: DeliveryOutcome) => {
    const now = Date.now();
    let updated: Row | undefined;
    if (outcome.ok) {
      updated = stmt.sent.get({ id: row.id, transport: outcome.transport, now }) as Row | undefined;
      events.emit("delivery", { result: "sent", transport: outcome.transport });
      if (row.uncertain)
        events.emit("recovered", { outcome: outcome.recovered ? "found-in-sent-items" : "resent" });
    } else {
      const { error } = outcome;
      const fields = { id: row.id, now, code: error.code, message: error.message, hint: error.hint ?? null };
      const canRetry =
        !outcome.undecidable &&
        (outcome.retryable || closed) &&
        (row.attempts < options.maxAttempts || closed);
      // A send that may have reached Microsoft and will not be tried again still gets its Sent Items
      // check (an attempt with `uncertain` set only looks, never sends): found there, it is sent.
      const checkFirst = !canRetry && outcome.maybeSubmitted && !outcome.undecidable && !row.uncertain;
      if (checkFirst) {
        const next = (row.attempt_started_at ?? now) + options.sentItemsGraceMs;
        updated = stmt.retry.get({ ...fields, next, uncertain: 1 }) as Row | undefined;
        events.emit("delivery", { result: "retry", code: error.code });
        logger.warn(`delivery attempt ${row.attempts} may have reached Microsoft: checking Sent Items`, {
          id: row.id,
          code: error.code,
        });
      } else if (canRetry) {
        let next = now + backoffMs(row.attempts, options.retryBaseMs, outcome.retryAfterMs);
        if (outcome.maybeSubmitted)
          next = Math.max(next, (row.attempt_started_at ?? now) + options.sentItemsGraceMs);
        updated = stmt.retry.get({ ...fields, next, uncertain: outcome.maybeSubmitted ? 1 : 0 }) as
          | Row
          | undefined;
        events.emit("delivery", { result: "retry", code: error.code });
        logger.warn(`delivery attempt ${row.attempts} failed, retrying`, { id: row.id, code: error.code });
      } else if (outcome.maybeSubmitted) {
        // It may have been delivered: neither "failed" nor a blind resend, but a person's decision.
        updated = stmt.uncertain.get(fields) as Row | undefined;
        events.emit("delivery", { result: "uncertain", code: error.code });
        logger.error("delivery uncertain: left to an operator (retry or discard)", {
          id: row.id,
          code: error.code,
          message: error.message,
        });
      } else {
        updated = stmt.failed.get(fields) as Row | undefined;
        events.emit("delivery", { result: "failed", code: error.code });
        logger.error("delivery failed for good", { id: row.id, code: error.code, message: error.message });
      }
    }
    if (updated) events.emit("change", toEntry(updated));
  };

  const run = async (row: Row): Promise<void> => {
    events.emit("change", toEntry(row));
    let outcome: DeliveryOutcome;
    try {
      const message: StoredOutboxMessage<P> = {
        messageId: row.message_id,
        via: row.via,
        ...(row.subject ? { subject: row.subject } : {}),
        payload: JSON.parse(row.payload ?? "null") as P,
        ...(row.raw ? { raw: row.raw } : {}),
      };
      outcome = await deliver(
        {
          message,
          uncertain: row.uncertain === 1,
          since: row.first_attempt_at ?? row.created_at,
          claimedAt: row.attempt_started_at ?? Date.now(),
        },
        controller.signal,
      );
    } catch (error) {
      outcome = {
        ok: false,
        error: new M365MailError("SERVER_ERROR", "delivery crashed", { source: "outbox", cause: error }),
        retryable: true,
        maybeSubmitted: true,
      };
    }
    try {
      finish(row, outcome);
    } catch (error) {
      // The row stays "sending": the next start checks it in Sent Items.
      logger.error("could not record a delivery outcome", { id: row.id, error: String(error) });
    }
  };

  const pump = () => {
    pumpScheduled = false;
    if (closed) return;
    const now = Date.now();
    for (const lane of lanes) {
      const free = options.concurrency[lane]! - active[lane]!;
      if (free <= 0) continue;
      let rows: Row[];
      try {
        rows = stmt.claim.all({ lane, n: free, now, owner });
      } catch (error) {
        logger.error("could not claim outbox rows", { error: String(error) });
        return;
      }
      for (const row of rows) {
        active[lane]!++;
        const p = run(row).finally(() => {
          active[lane]!--;
          inflight.delete(p);
          schedulePump();
        });
        inflight.add(p);
      }
    }
  };

  function schedulePump() {
    if (pumpScheduled || closed) return;
    pumpScheduled = true;
    setImmediate(pump);
  }

  return {
    kind: "sqlite",
    events,
    accept(input) {
      if (closed) return Promise.reject(shuttingDown());
      return new Promise<AcceptResult>((resolve, reject) => {
        pending.push({ input, resolve, reject });
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      });
    },
    async get(id) {
      const row = stmt.byId.get(id);
      return row ? toEntry(row) : undefined;
    },
    async list({ limit, state, owner, after }) {
      const rows = stmt.list.all({
        limit,
        state: state ?? null,
        owner: owner ?? null,
        after: after?.id ?? null,
      });
      return rows.map(toEntry);
    },
    async counts() {
      const out: Record<OutboxState, number> = { queued: 0, sending: 0, sent: 0, failed: 0, uncertain: 0 };
      for (const { state, n } of stmt.counts.all()) out[state] = n;
      return out;
    },
    async resolve(id: string, action: ResolveAction) {
      const now = Date.now();
      const before = stmt.byId.get(id);
      if (!before) throw notFound(id);
      let row: Row | undefined;
      if (action === "discard")
        row = stmt.discard.get({ id, now, ...DISCARDED, queuedMessage: DISCARDED_QUEUED.message }) as
          | Row
          | undefined;
      else if (before.state === "uncertain") row = stmt.operatorRetry.get({ id, now }) as Row | undefined;
      else row = stmt.retryNow.get({ id, now }) as Row | undefined;
      // Read and change are two statements, but this process is the file's only writer: only a
      // delivery of this process (one at a time on the event loop) changes it in between, never mid-way.
      if (!row) throw notSettleable(stmt.byId.get(id)?.state ?? before.state);
      const entry = toEntry(row);
      logger.warn(`an operator chose to ${action} a ${before.state} message`, {
        id,
        messageId: entry.messageId,
      });
      events.emit("change", entry);
      if (action === "retry") schedulePump();
      return entry;
    },
    async start() {
      const recovered = stmt.recover.all({ grace: options.sentItemsGraceMs });
      if (recovered.length > 0) {
        logger.warn(
          `${recovered.length} message(s) were being sent when the last run stopped: checking Sent Items before any resend`,
        );
        for (const row of recovered) events.emit("change", toEntry(row));
      }
      timer = setInterval(schedulePump, options.pollIntervalMs ?? 250);
      timer.unref();
      const retention = options.retentionMs ?? 30 * 86_400_000;
      pruneTimer = setInterval(() => stmt.prune.run({ before: Date.now() - retention }), 3_600_000);
      pruneTimer.unref();
      schedulePump();
    },
    async check() {
      db.prepare("SELECT 1").get();
    },
    async close() {
      if (closed) return;
      flush();
      closed = true;
      clearInterval(timer);
      clearInterval(pruneTimer);
      // Let deliveries in flight finish; after the bound they are aborted and recorded as uncertain.
      const all = Promise.allSettled([...inflight]);
      const bounded = await Promise.race([
        all.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 10_000).unref()),
      ]);
      if (!bounded) {
        controller.abort();
        await Promise.race([all, new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      db.close();
    },
  };
}
