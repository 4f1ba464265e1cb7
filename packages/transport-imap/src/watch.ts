import type { Logger, MailEvent, MessageQuery } from "@m365-mail/core";
import { type ConnectionSettings, type ImapConnection, openConnection } from "./imap-connection.js";
import { toImapError } from "./imap-errors.js";
import { uidSet } from "./message-id.js";
import { type ImapMessageSummary, summaryQuery, toSummary } from "./summary.js";

export interface WatchContext {
  readonly settings: ConnectionSettings;
  readonly logger: Logger;
  readonly batchSize: number;
  resolveFolder(folder: string | undefined, signal: AbortSignal): Promise<string>;
}

/** Consecutive failed reconnects (backing off up to 30 s each) before watch() gives up and throws. */
export const WATCH_MAX_CONSECUTIVE_FAILURES = 20;
/** Reconnects tried while the watched folder does not exist, before watch() throws NOT_FOUND. */
const NOT_FOUND_RETRIES = 3;
/** After a UIDVALIDITY change, messages this much older than the last check are still looked at. */
const REBASELINE_SKEW_MS = 60_000;

/** A set that forgets its oldest entries: Message-IDs already reported, for the UIDVALIDITY rule. */
class RecentSet {
  private readonly items = new Set<string>();
  constructor(private readonly max: number) {}
  add(value: string): void {
    this.items.add(value);
    if (this.items.size > this.max) this.items.delete(this.items.values().next().value as string);
  }
  has(value: string): boolean {
    return this.items.has(value);
  }
}

class Wakeup {
  private resolve: (() => void) | undefined;
  private promise: Promise<void> | undefined;
  private pending = false;
  set(): void {
    this.pending = true;
    this.resolve?.();
  }
  reset(): void {
    this.pending = false;
    this.promise = undefined;
    this.resolve = undefined;
  }
  wait(): Promise<void> {
    if (this.pending) return Promise.resolve();
    this.promise ??= new Promise<void>((resolve) => {
      this.resolve = resolve;
    });
    return this.promise;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Waits for a wake-up, the deadline (epoch ms) or the stop signal, whichever comes first; leaves no timer. */
function waitForWake(wake: Wakeup, deadline: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      stop.removeEventListener("abort", finish);
      resolve();
    };
    const timer = setTimeout(finish, Math.min(2 ** 31 - 1, Math.max(0, deadline - Date.now())));
    stop.addEventListener("abort", finish, { once: true });
    void wake.wait().then(finish);
  });
}

function matches(summary: ImapMessageSummary, query: MessageQuery): boolean {
  if (query.unreadOnly && summary.isRead) return false;
  if (query.since && summary.receivedAt && summary.receivedAt < query.since) return false;
  return true;
}

/**
 * Reports each new message of one folder once, on its own connection (IDLE occupies a connection).
 *
 * Position is the highest UID reported. After a BYE (Exchange ends sessions whose token expired:
 * `Session invalidated - AccessTokenExpired`), a drop, or a planned renewal before the token expires, it
 * reconnects with a fresh token, re-selects the folder and fetches every UID above that position, so
 * nothing is lost or repeated. If UIDVALIDITY changed (the folder was rebuilt and UIDs renumbered), it
 * reports messages received since the last check (minus 60 s) whose Message-ID it has not reported yet,
 * then continues from the folder's new UIDNEXT.
 */
export async function* watchFolder(
  context: WatchContext,
  query: MessageQuery,
  stop: AbortSignal,
): AsyncGenerator<MailEvent> {
  const { settings, logger } = context;
  const folder = await context.resolveFolder(query.folder, stop);
  const reported = new RecentSet(5000);
  const wake = new Wakeup();
  let uidValidity: bigint | undefined;
  let lastUid = 0;
  let lastCheck = new Date();
  let connection: ImapConnection | undefined;
  let failures = 0;
  const onStop = () => wake.set();
  stop.addEventListener("abort", onStop, { once: true });

  const emit = (summary: ImapMessageSummary): MailEvent | undefined => {
    if (summary.internetMessageId) reported.add(summary.internetMessageId);
    return matches(summary, query) ? { type: "created", message: summary } : undefined;
  };

  try {
    while (!stop.aborted) {
      try {
        if (!connection || connection.closed || Date.now() >= connection.renewAt) {
          if (connection) {
            const why = connection.closed
              ? `closed (${connection.byeReason ?? "dropped"})`
              : "token about to expire";
            logger.info(`watch ${folder}: reconnecting, connection ${why}`);
            await connection.end();
          }
          connection = undefined;
          const fresh = await openConnection(settings, {
            autoIdle: false,
            signal: stop,
            purpose: `watch ${folder}`,
          });
          connection = fresh;
          fresh.client.on("exists", () => wake.set());
          void fresh.whenClosed.then(() => wake.set());
          const box = await fresh.client.mailboxOpen(folder);
          if (uidValidity === undefined) {
            // Baseline: only mail that arrives from now on is "created".
            uidValidity = box.uidValidity;
            lastUid = Math.max(0, box.uidNext - 1);
          } else if (box.uidValidity !== uidValidity) {
            logger.warn(`watch ${folder}: UIDVALIDITY changed, re-baselining`, {
              before: uidValidity.toString(),
              after: box.uidValidity.toString(),
            });
            uidValidity = box.uidValidity;
            const since = new Date(lastCheck.getTime() - REBASELINE_SKEW_MS);
            const uids = ((await fresh.client.search({ since }, { uid: true })) || []).sort((a, b) => a - b);
            lastUid = Math.max(0, box.uidNext - 1);
            for (let i = 0; i < uids.length; i += context.batchSize) {
              const batch = await fresh.client.fetchAll(
                uidSet(uids.slice(i, i + context.batchSize)),
                summaryQuery(false),
                {
                  uid: true,
                },
              );
              for (const message of batch.sort((a, b) => a.uid - b.uid)) {
                lastUid = Math.max(lastUid, message.uid);
                const summary = toSummary(message, folder, uidValidity);
                if (summary.receivedAt && summary.receivedAt < since) continue;
                if (summary.internetMessageId && reported.has(summary.internetMessageId)) continue;
                const event = emit(summary);
                if (event) yield event;
              }
            }
          }
          failures = 0;
        }
        const client = connection.client;
        const checkStart = new Date();
        // Reset before asking: an EXISTS that arrives while we search wakes the next wait at once.
        wake.reset();
        const found = await client.search({ uid: `${lastUid + 1}:*` }, { uid: true });
        // "n:*" also matches the highest UID when n is above it: keep only really new ones.
        const uids = (found || []).filter((uid) => uid > lastUid).sort((a, b) => a - b);
        for (let i = 0; i < uids.length; i += context.batchSize) {
          const batch = await client.fetchAll(
            uidSet(uids.slice(i, i + context.batchSize)),
            summaryQuery(false),
            {
              uid: true,
            },
          );
          for (const message of batch.sort((a, b) => a.uid - b.uid)) {
            if (message.uid <= lastUid) continue;
            lastUid = message.uid;
            const event = emit(toSummary(message, folder, uidValidity!));
            if (event) yield event;
            if (stop.aborted) return;
          }
        }
        lastCheck = checkStart;
        failures = 0;
        if (stop.aborted) break;
        // IDLE until the server reports mail, the connection closes, the token needs renewing, or we stop.
        // The next command (SEARCH) ends the IDLE by itself.
        const idling = client.idle().catch(() => undefined);
        await waitForWake(wake, connection.renewAt, stop);
        if (connection.closed) await idling;
      } catch (error) {
        if (stop.aborted) break;
        const mapped = toImapError(error, {
          operation: `watch ${folder}`,
          host: settings.host,
          port: settings.port,
        });
        failures++;
        // A settings problem (wrong scope, IMAP off, no consent) will not fix itself by reconnecting. A
        // folder that vanished may be being re-created (its UIDVALIDITY then changes): a few more tries.
        const fatal = !mapped.retryable && !(mapped.code === "NOT_FOUND" && failures <= NOT_FOUND_RETRIES);
        if (fatal) throw mapped;
        if (failures > WATCH_MAX_CONSECUTIVE_FAILURES) throw mapped;
        const backoff = Math.min(30_000, 250 * 2 ** Math.min(failures, 7)) * (0.5 + Math.random() / 2);
        logger.warn(`watch ${folder}: ${mapped.code}, reconnecting in ${Math.round(backoff)} ms`, {
          error: mapped,
        });
        connection?.client.close();
        connection = undefined;
        await sleep(backoff, stop);
      }
    }
  } finally {
    stop.removeEventListener("abort", onStop);
    await connection?.end();
  }
}

/**
 * Wraps a generator so that `return()` stops it even while it waits for mail (a plain async generator
 * would queue the return until its next yield).
 */
export function stoppable<T>(
  factory: (stop: AbortSignal) => AsyncGenerator<T>,
  signals: readonly AbortSignal[],
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const controller = new AbortController();
      const generator = factory(AbortSignal.any([controller.signal, ...signals]));
      return {
        next: () => generator.next(),
        async return(value?: unknown) {
          controller.abort();
          return generator.return(value as T);
        },
        async throw(error?: unknown) {
          controller.abort();
          return generator.throw(error);
        },
      };
    },
  };
}
