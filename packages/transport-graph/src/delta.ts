import { isM365MailError, M365MailError, type MailEvent, type MessageQuery } from "@m365-mail/core";
import { resolveFolder } from "./folders.js";
import type { GraphContext } from "./graph-context.js";
import { SOURCE } from "./graph-errors.js";
import { type GraphMessage, SUMMARY_FIELDS, toSummary } from "./graph-message.js";
import { OPERATIONS } from "./operations.js";
import { sleep } from "./retry-policy.js";

export interface DeltaOptions {
  /** Folder id, path or well-known name; only read when there is no `state`. Default "inbox". */
  folder?: string;
  /** The `state` of the previous call; without it the whole folder is reported as created. */
  state?: string;
  /** Messages per page (`Prefer: odata.maxpagesize`). Default 100. */
  pageSize?: number;
  signal?: AbortSignal;
}

export interface DeltaResult {
  /**
   * Changes since `state`. Graph's delta does not say created or updated: a message whose
   * createdDateTime is at or after the previous round counts as created, any other as updated.
   */
  readonly changes: MailEvent[];
  /** Opaque; store it and pass it back to get the next changes (survives restarts). */
  readonly state: string;
}

interface DeltaState {
  v: 1;
  /** The folder's URL segment, to start over when Graph forgets the sync state. */
  folder: string;
  /** `@odata.deltaLink` of the last round, fetched as given. */
  link: string;
  /** Graph's clock (Date header) when the last round started, ms since epoch. */
  at: number;
}

interface DeltaPage {
  value?: GraphMessage[];
  "@odata.nextLink"?: string;
  "@odata.deltaLink"?: string;
}

export function encodeDeltaState(state: DeltaState): string {
  return Buffer.from(JSON.stringify(state), "utf8").toString("base64url");
}

export function decodeDeltaState(state: string): DeltaState {
  try {
    const parsed = JSON.parse(Buffer.from(state, "base64url").toString("utf8")) as Partial<DeltaState>;
    if (
      parsed.v === 1 &&
      typeof parsed.link === "string" &&
      typeof parsed.folder === "string" &&
      typeof parsed.at === "number"
    ) {
      return parsed as DeltaState;
    }
  } catch {
    // handled below
  }
  throw new M365MailError("CONFIG_INVALID", "the delta state is not one this transport produced", {
    source: SOURCE,
    hint: "Pass back the `state` string of a previous delta() call unchanged, or omit it to start over.",
  });
}

export async function delta(ctx: GraphContext, options: DeltaOptions = {}): Promise<DeltaResult> {
  const { signal } = options;
  const previous = options.state ? decodeDeltaState(options.state) : undefined;
  const folder = previous?.folder ?? (await resolveFolder(ctx, options.folder, signal));
  const fresh = `${ctx.mailboxPath}/mailFolders/${folder}/messages/delta?$select=${SUMMARY_FIELDS}`;
  try {
    return await round(ctx, folder, previous?.link ?? fresh, previous?.at, options);
  } catch (error) {
    // Graph forgets sync states (410 Gone / SyncStateNotFound): start over, and report as created
    // only what was created since the last round (deletions in between cannot be known).
    if (previous && isM365MailError(error, "NOT_FOUND")) {
      ctx.log.warn("delta: Graph no longer knows the sync state; starting over");
      const result = await round(ctx, folder, fresh, previous.at, options);
      return { state: result.state, changes: result.changes.filter((c) => c.type === "created") };
    }
    throw error;
  }
}

async function round(
  ctx: GraphContext,
  folder: string,
  start: string,
  since: number | undefined,
  options: DeltaOptions,
): Promise<DeltaResult> {
  const headers = { Prefer: `odata.maxpagesize=${Math.max(1, Math.min(1000, options.pageSize ?? 100))}` };
  const changes = new Map<string, MailEvent>();
  let url: string | undefined = start;
  let at: number | undefined;
  while (url) {
    const answer: { headers: Headers; data: DeltaPage } = await ctx.http.request<DeltaPage>(
      OPERATIONS.delta,
      "GET",
      url,
      { headers, signal: options.signal },
    );
    at ??= Date.parse(answer.headers.get("date") ?? "") || Date.now();
    const page: DeltaPage = answer.data ?? {};
    for (const m of page.value ?? []) {
      // The same message can come twice in one round: the last state wins.
      changes.delete(m.id);
      if (m["@removed"]) {
        changes.set(m.id, { type: "deleted", id: m.id });
        continue;
      }
      const created = Date.parse(m.createdDateTime ?? m.receivedDateTime ?? "");
      const isNew = since === undefined || Number.isNaN(created) || created >= since;
      changes.set(m.id, { type: isNew ? "created" : "updated", message: toSummary(m) });
    }
    if (page["@odata.deltaLink"]) {
      return {
        changes: [...changes.values()],
        state: encodeDeltaState({ v: 1, folder, link: page["@odata.deltaLink"], at }),
      };
    }
    url = page["@odata.nextLink"];
  }
  throw new M365MailError("INVALID_RESPONSE", "delta ended without an @odata.deltaLink", { source: SOURCE });
}

export interface WatchOptions {
  signal?: AbortSignal;
  /** Poll interval; defaults to the transport's `watchIntervalMs`. */
  intervalMs?: number;
}

/**
 * New mail by delta polling: the folder's current state is the starting point (nothing already
 * there is reported), then each round reports what changed. Token expiry costs nothing (every
 * request asks the token provider); passing errors (throttling, network) are logged and the next
 * round catches up, so no mail is lost. Ends when `signal` aborts.
 */
export async function* watch(
  ctx: GraphContext,
  query: MessageQuery = {},
  options: WatchOptions = {},
): AsyncGenerator<MailEvent> {
  const { signal } = options;
  const interval = options.intervalMs ?? ctx.watchIntervalMs;
  let state: string;
  try {
    state = (await delta(ctx, { folder: query.folder, signal })).state;
  } catch (error) {
    if (signal?.aborted) return;
    throw error;
  }
  // Ids already reported as created, so an update right after arrival is not reported as new again.
  const announced = new Set<string>();
  for (;;) {
    try {
      await sleep(interval, signal);
    } catch {
      return;
    }
    let result: DeltaResult;
    try {
      result = await delta(ctx, { state, signal });
    } catch (error) {
      if (signal?.aborted) return;
      if (isM365MailError(error) && error.retryable) {
        ctx.log.warn(`watch: ${error.code}; trying again in ${interval} ms`);
        continue;
      }
      throw error;
    }
    state = result.state;
    for (let event of result.changes) {
      if (event.type === "created") {
        if (announced.has(event.message.id)) event = { type: "updated", message: event.message };
        else {
          announced.add(event.message.id);
          if (announced.size > 10_000) announced.delete(announced.values().next().value as string);
        }
      }
      if (event.type !== "deleted") {
        if (query.unreadOnly && event.message.isRead) continue;
        if (query.since && event.message.receivedAt && event.message.receivedAt < query.since) continue;
      }
      yield event;
    }
  }
}
