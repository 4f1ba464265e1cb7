import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { M365MailError } from "@m365-mail/core";
import Database from "better-sqlite3";
import type { Redis } from "ioredis";

/** One POST of one event to one URL, as stored until it succeeds or runs out of tries. */
export interface WebhookDelivery {
  id: string;
  url: string;
  body: string;
  /** Tries made so far. */
  attempt: number;
}

/**
 * Where deliveries wait, so a restart does not drop them. `claim` leases due rows until `leaseUntil`:
 * a process that dies mid-POST leaves the lease to expire, and the delivery is tried again.
 */
export interface WebhookStore {
  add(delivery: WebhookDelivery, dueAt: number): Promise<void>;
  claim(now: number, leaseUntil: number, limit: number): Promise<WebhookDelivery[]>;
  reschedule(delivery: WebhookDelivery, dueAt: number): Promise<void>;
  remove(id: string): Promise<void>;
  /** The earliest due time, or undefined when nothing waits. */
  nextDue(): Promise<number | undefined>;
  close(): Promise<void>;
}

/** The webhook file next to the outbox's (the outbox holds its own file in exclusive mode). */
export function webhookStorePath(outboxPath: string): string {
  return outboxPath === ":memory:" ? ":memory:" : `${dirname(outboxPath)}/webhooks.db`;
}

export function sqliteWebhookStore(path: string): WebhookStore {
  let db: Database.Database;
  try {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: 3000 });
    db.pragma("journal_mode = WAL");
    db.exec(
      "CREATE TABLE IF NOT EXISTS webhook_deliveries (id TEXT PRIMARY KEY, url TEXT NOT NULL, body TEXT NOT NULL, attempt INTEGER NOT NULL, due_at INTEGER NOT NULL)",
    );
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot open the webhook store ${path}`, {
      source: "server",
      cause: error,
      hint: "Point OUTBOX_PATH at a writable folder: webhooks.db is kept next to the outbox file.",
    });
  }
  const insert = db.prepare("INSERT OR REPLACE INTO webhook_deliveries VALUES (?, ?, ?, ?, ?)");
  const due = db.prepare("SELECT id, url, body, attempt FROM webhook_deliveries WHERE due_at <= ? LIMIT ?");
  const lease = db.prepare("UPDATE webhook_deliveries SET due_at = ? WHERE id = ?");
  const update = db.prepare("UPDATE webhook_deliveries SET attempt = ?, due_at = ? WHERE id = ?");
  const del = db.prepare("DELETE FROM webhook_deliveries WHERE id = ?");
  const min = db.prepare("SELECT MIN(due_at) AS d FROM webhook_deliveries");
  const claim = db.transaction((now: number, until: number, limit: number) => {
    const rows = due.all(now, limit) as WebhookDelivery[];
    for (const row of rows) lease.run(until, row.id);
    return rows;
  });
  return {
    async add(d, dueAt) {
      insert.run(d.id, d.url, d.body, d.attempt, dueAt);
    },
    async claim(now, until, limit) {
      return claim(now, until, limit);
    },
    async reschedule(d, dueAt) {
      update.run(d.attempt, dueAt, d.id);
    },
    async remove(id) {
      del.run(id);
    },
    async nextDue() {
      const row = min.get() as { d: number | null };
      return row.d ?? undefined;
    },
    async close() {
      db.close();
    },
  };
}

// Claims atomically across processes: only rows still due are leased, each by one process.
const CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  local v = redis.call('HGET', KEYS[2], id)
  if v then table.insert(out, v) else redis.call('ZREM', KEYS[1], id) end
end
return out`;

/** OUTBOX=redis: deliveries in Redis, shared by every server process. */
export function redisWebhookStore(redis: Redis, prefix = "m365:webhooks"): WebhookStore {
  const zset = `${prefix}:due`;
  const hash = `${prefix}:body`;
  return {
    async add(d, dueAt) {
      await redis.multi().hset(hash, d.id, JSON.stringify(d)).zadd(zset, dueAt, d.id).exec();
    },
    async claim(now, until, limit) {
      const rows = (await redis.eval(CLAIM, 2, zset, hash, now, until, limit)) as string[];
      return rows.map((r) => JSON.parse(r) as WebhookDelivery);
    },
    async reschedule(d, dueAt) {
      await redis.multi().hset(hash, d.id, JSON.stringify(d)).zadd(zset, dueAt, d.id).exec();
    },
    async remove(id) {
      await redis.multi().zrem(zset, id).hdel(hash, id).exec();
    },
    async nextDue() {
      const first = await redis.zrange(zset, 0, 0, "WITHSCORES");
      return first[1] === undefined ? undefined : Number(first[1]);
    },
    async close() {
      await redis.quit().catch(() => undefined);
    },
  };
}
