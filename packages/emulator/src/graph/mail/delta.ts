/** `messages/delta`: rounds of changes with `$skiptoken` pages and `$deltatoken` rounds. */
import { randomBytes } from "node:crypto";
import { GraphError } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import type { MessageRecord } from "../mailbox-view.js";
import { MESSAGE_PROPERTIES } from "../message-resource.js";
import { odataQueryString, parseMessageFilter, parseSelect, parseTop, preferredPageSize } from "../odata.js";
import { bodyPreferenceHeaders, pathSegment, render, requireFolder } from "./route.js";

export interface DeltaPage {
  upn: string;
  prefix: string;
  folderId: string;
  /** What is left to serve: message ids to render, or removed ids. */
  items: ({ kind: "message"; record: MessageRecord } | { kind: "removed"; id: string })[];
  deltaToken: string;
  select: string[] | undefined;
  pageSize: number;
  expiresAt: number;
}

const DELTA_PAGE_TTL_MS = 15 * 60 * 1000;
const MAX_DELTA_OPTIONS = 1000;

/** Open delta rounds (by `$skiptoken`) and the options of issued delta tokens; one per Graph part. */
export class DeltaState {
  readonly pages = new Map<string, DeltaPage>();
  private readonly options = new Map<string, DeltaOptions>();

  optionsOf(token: string): DeltaOptions | undefined {
    return this.options.get(token);
  }

  remember(token: string, options: DeltaOptions): void {
    this.options.delete(token);
    this.options.set(token, options);
    // Oldest first in a Map: drop beyond the cap (a dropped token just loses its $select).
    for (const key of this.options.keys()) {
      if (this.options.size <= MAX_DELTA_OPTIONS) break;
      this.options.delete(key);
    }
  }
}

interface DeltaOptions {
  select: string[] | undefined;
  changeType: string | undefined;
  filter: ReturnType<typeof parseMessageFilter>;
}

export async function delta(route: RouteContext): Promise<GraphResponse> {
  const { req, service, mailbox } = route;
  const now = Date.now();
  const deltaPages = service.deltaState.pages;
  for (const [key, page] of deltaPages) if (page.expiresAt < now) deltaPages.delete(key);
  const skipToken = req.query.get("$skiptoken");
  let state: DeltaPage;
  if (skipToken !== null) {
    const found = deltaPages.get(skipToken);
    if (!found || found.upn !== mailbox.upn.toLowerCase()) throw syncStateNotFound();
    deltaPages.delete(skipToken);
    state = found;
  } else {
    const folder = await requireFolder(route, pathSegment(route, 1));
    const deltaToken = req.query.get("$deltatoken") ?? undefined;
    const previous = deltaToken ? service.deltaState.optionsOf(deltaToken) : undefined;
    const select = previous?.select ?? parseSelect(req.query, MESSAGE_PROPERTIES, "microsoft.graph.message");
    const changeType = (previous?.changeType ?? req.query.get("changeType") ?? "").toLowerCase() || undefined;
    const filter = previous?.filter ?? parseMessageFilter(req.query);
    const diff = await service.view.delta(mailbox.upn, folder.id, deltaToken);
    const keep = (record: MessageRecord) =>
      !filter?.receivedAfter ||
      (filter.receivedAfter.inclusive
        ? record.receivedAt.getTime() >= filter.receivedAfter.time
        : record.receivedAt.getTime() > filter.receivedAfter.time);
    const items: DeltaPage["items"] = [];
    if (!changeType || changeType === "created") {
      for (const record of diff.created.filter(keep)) items.push({ kind: "message", record });
    }
    if (!changeType || changeType === "updated") {
      for (const record of diff.updated.filter(keep)) items.push({ kind: "message", record });
    }
    if (!changeType || changeType === "deleted")
      for (const id of diff.deleted) items.push({ kind: "removed", id });
    service.deltaState.remember(diff.token, { select, changeType, filter });
    state = {
      upn: mailbox.upn.toLowerCase(),
      prefix: route.prefix,
      folderId: folder.id,
      items,
      deltaToken: diff.token,
      select,
      pageSize: preferredPageSize(req.headers.prefer) ?? parseTop(req.query, 10),
      expiresAt: now + DELTA_PAGE_TTL_MS,
    };
  }
  const page = state.items.slice(0, state.pageSize);
  const rest = state.items.slice(state.pageSize);
  const value = await Promise.all(
    page.map(async (item) =>
      item.kind === "removed"
        ? { "@odata.type": "#microsoft.graph.message", id: item.id, "@removed": { reason: "deleted" } }
        : { "@odata.type": "#microsoft.graph.message", ...(await render(route, item.record, state.select)) },
    ),
  );
  const base = `${service.origin}/v1.0${state.prefix}/mailFolders('${state.folderId}')/messages/delta`;
  let link: Record<string, string>;
  if (rest.length > 0) {
    const token = randomBytes(18).toString("base64url");
    deltaPages.set(token, { ...state, items: rest, expiresAt: now + DELTA_PAGE_TTL_MS });
    link = { "@odata.nextLink": `${base}?${odataQueryString(new URLSearchParams({ $skiptoken: token }))}` };
  } else {
    link = {
      "@odata.deltaLink": `${base}?${odataQueryString(new URLSearchParams({ $deltatoken: state.deltaToken }))}`,
    };
  }
  const pageSize = preferredPageSize(req.headers.prefer);
  return {
    status: 200,
    headers: {
      ...bodyPreferenceHeaders(route),
      ...(pageSize ? { "Preference-Applied": `odata.maxpagesize=${pageSize}` } : {}),
    },
    json: { "@odata.context": `${service.origin}/v1.0/$metadata#Collection(message)`, ...link, value },
  };
}

export function syncStateNotFound(): GraphError {
  return new GraphError(
    410,
    "SyncStateNotFound",
    "The sync state is invalid or has expired. Restart synchronization without a token.",
  );
}
