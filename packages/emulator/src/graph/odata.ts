import { badRequest, GraphError } from "./graph-error.js";

/** `$top` as Graph reads it: a positive integer, capped (Outlook serves at most 1000 per page). */
export function parseTop(query: URLSearchParams, fallback: number, max = 1000): number {
  const raw = query.get("$top");
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw.trim())) throw badRequest(`Invalid value '${raw}' for $top query option found.`);
  return Math.max(1, Math.min(max, Number(raw)));
}

export function parseSkip(query: URLSearchParams): number {
  const raw = query.get("$skip");
  if (raw === null) return 0;
  if (!/^\d+$/.test(raw.trim())) throw badRequest(`Invalid value '${raw}' for $skip query option found.`);
  return Number(raw);
}

/** `$select=a,b` → ["a","b"]; checks every name against the resource's properties like OData does. */
export function parseSelect(
  query: URLSearchParams,
  known: ReadonlySet<string>,
  typeName: string,
): string[] | undefined {
  const raw = query.get("$select");
  if (raw === null || raw.trim() === "") return undefined;
  const names = raw
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!known.has(name.toLowerCase())) throw unknownProperty(name, typeName);
  }
  return names;
}

export function unknownProperty(name: string, typeName: string): GraphError {
  return badRequest(`Could not find a property named '${name}' on type '${typeName}'.`);
}

/** Keeps `id` and the OData annotations, plus the selected properties (case-insensitively, like Graph). */
export function applySelect(
  resource: Record<string, unknown>,
  select: readonly string[] | undefined,
): Record<string, unknown> {
  if (!select) return resource;
  const wanted = new Set(select.map((name) => name.toLowerCase()));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    if (key.startsWith("@odata.") || key === "id" || wanted.has(key.toLowerCase())) out[key] = value;
  }
  return out;
}

/** The subset of OData `$filter` Outlook clients use for mail: received time, unread and Message-ID, joined by `and`. */
export interface MessageFilter {
  receivedAfter?: { time: number; inclusive: boolean };
  isRead?: boolean;
  /** `internetMessageId eq '<id@host>'`: how clients find a message by its Message-ID. */
  internetMessageId?: string;
  /** Filtered properties in the order written (Outlook's rule for `$orderby` looks at it). */
  properties: string[];
}

const INVALID_FILTER = (): GraphError =>
  new GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.");

export function parseMessageFilter(query: URLSearchParams): MessageFilter | undefined {
  const raw = query.get("$filter");
  if (raw === null || raw.trim() === "") return undefined;
  const filter: MessageFilter = { properties: [] };
  for (const clause of raw.trim().split(/\s+and\s+/i)) {
    const received = /^\(?\s*receivedDateTime\s+(ge|gt)\s+(\S+?)\s*\)?$/i.exec(clause.trim());
    if (received) {
      const text = received[2]!.replace(/^'|'$/g, "");
      // OData DateTimeOffset without an offset: read as UTC, never as the machine's local time.
      const time = Date.parse(/(?:Z|[+-]\d{2}:?\d{2})$/i.test(text) ? text : `${text}Z`);
      if (Number.isNaN(time)) throw INVALID_FILTER();
      filter.receivedAfter = { time, inclusive: received[1]!.toLowerCase() === "ge" };
      filter.properties.push("receivedDateTime");
      continue;
    }
    const messageId = /^\(?\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*\)?$/i.exec(clause.trim());
    if (messageId) {
      filter.internetMessageId = messageId[1]!.replace(/''/g, "'");
      filter.properties.push("internetMessageId");
      continue;
    }
    const read = /^\(?\s*isRead\s+(eq|ne)\s+(true|false)\s*\)?$/i.exec(clause.trim());
    if (read) {
      const value = read[2]!.toLowerCase() === "true";
      filter.isRead = read[1]!.toLowerCase() === "eq" ? value : !value;
      filter.properties.push("isRead");
      continue;
    }
    throw INVALID_FILTER();
  }
  return filter;
}

export interface OrderBy {
  property: "receivedDateTime" | "sentDateTime" | "createdDateTime" | "lastModifiedDateTime";
  descending: boolean;
}

const ORDERABLE = ["receivedDateTime", "sentDateTime", "createdDateTime", "lastModifiedDateTime"] as const;

/**
 * Outlook's rule for `$filter` with `$orderby`: the ordered property must be filtered too, first;
 * otherwise 400 InefficientFilter.
 */
export function checkFilterOrder(
  query: URLSearchParams,
  filter: MessageFilter | undefined,
  order: OrderBy,
): void {
  if (!filter || query.get("$orderby") === null) return;
  if (filter.properties[0]?.toLowerCase() !== order.property.toLowerCase()) {
    throw new GraphError(
      400,
      "InefficientFilter",
      "The restriction or sort order is too complex for this operation.",
    );
  }
}

export function parseMessageOrderBy(query: URLSearchParams): OrderBy {
  const raw = query.get("$orderby");
  // Outlook's default order for message lists is newest first.
  if (raw === null || raw.trim() === "") return { property: "receivedDateTime", descending: true };
  const match = /^\s*(\w+)(?:\s+(asc|desc))?\s*$/i.exec(raw);
  const property = ORDERABLE.find((name) => name.toLowerCase() === match?.[1]?.toLowerCase());
  if (!match || !property) throw unknownProperty(match?.[1] ?? raw, "microsoft.graph.message");
  return { property, descending: match[2]?.toLowerCase() === "desc" };
}

/** `Prefer: odata.maxpagesize=N` (delta and lists). */
export function preferredPageSize(prefer: string | undefined): number | undefined {
  const match = /odata\.maxpagesize\s*=\s*(\d+)/i.exec(prefer ?? "");
  return match ? Math.max(1, Number(match[1])) : undefined;
}

/**
 * Graph's `@odata.nextLink`: absolute, on the configured origin, the same path and options with a new
 * `$skip`. Clients must follow it as given.
 */
export function nextLinkWithSkip(origin: string, path: string, query: URLSearchParams, skip: number): string {
  const next = new URLSearchParams(query);
  next.delete("$skip");
  next.set("$skip", String(skip));
  return `${origin}/v1.0${path}?${odataQueryString(next)}`;
}

/** Keeps `$` and `,` readable in links, as Graph prints them. */
export function odataQueryString(params: URLSearchParams): string {
  return params
    .toString()
    .replace(/%24/g, "$")
    .replace(/%2C/gi, ",")
    .replace(/%3A/gi, ":")
    .replace(/\+/g, "%20");
}
