import {
  type M365MailError,
  type Message,
  type MessageQuery,
  type MessageSummary,
  type ReceivedAttachment,
  searchWords,
} from "@m365-mail/core";
import { resolveFolder, WELL_KNOWN_FOLDERS } from "./folders.js";
import type { GraphContext } from "./graph-context.js";
import {
  type GraphFileAttachment,
  type GraphMessage,
  isFileAttachment,
  MESSAGE_FIELDS,
  SUMMARY_FIELDS,
  toMessage,
  toReceivedAttachment,
  toSummary,
} from "./graph-message.js";
import { OPERATIONS } from "./operations.js";

export interface GetMessageOptions {
  signal?: AbortSignal;
  /** Also fetch the RFC 5322 source (`GET …/$value`) into `message.raw`. */
  raw?: boolean;
}

/** Per-message outcome of a batched operation. */
export type BulkResult =
  | { readonly id: string; readonly ok: true /** The message's id after a move. */; readonly newId?: string }
  | { readonly id: string; readonly ok: false; readonly error: M365MailError };

interface MessagePage {
  value?: GraphMessage[];
  "@odata.nextLink"?: string;
}

const id = (value: string) => encodeURIComponent(value);

/** Newest first, every page via `@odata.nextLink` as given. */
export async function* listMessages(
  ctx: GraphContext,
  query: MessageQuery = {},
  signal?: AbortSignal,
): AsyncGenerator<MessageSummary> {
  const folder = await resolveFolder(ctx, query.folder, signal);
  const limit = query.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  if (query.search) {
    yield* searchMessages(ctx, folder, query, limit, signal);
    return;
  }
  const filters: string[] = [];
  // Graph refuses $orderby on a property that is not also the first one filtered ("InefficientFilter"),
  // so an unread-only query starts with a receivedDateTime condition that matches everything.
  if (query.since) filters.push(`receivedDateTime ge ${query.since.toISOString()}`);
  else if (query.unreadOnly) filters.push("receivedDateTime ge 1900-01-01T00:00:00Z");
  if (query.unreadOnly) filters.push("isRead eq false");
  const top = Math.max(1, Math.min(1000, query.pageSize ?? 50, limit));

  let url: string | undefined =
    `${ctx.mailboxPath}/mailFolders/${folder}/messages` +
    `?$top=${top}&$select=${SUMMARY_FIELDS}&$orderby=${encodeURIComponent("receivedDateTime desc")}` +
    (filters.length > 0 ? `&$filter=${encodeURIComponent(filters.join(" and "))}` : "");
  // Mail arriving while we page shifts $skip-based pages: remember ids so none is yielded twice.
  const seen = new Set<string>();
  let count = 0;
  while (url) {
    const page: MessagePage =
      (await ctx.http.request<MessagePage>(OPERATIONS.listMessages, "GET", url, { signal })).data ?? {};
    for (const m of page.value ?? []) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      yield toSummary(m);
      if (++count >= limit) return;
    }
    url = page["@odata.nextLink"];
  }
}

/**
 * `$search` (KQL). Graph refuses `$filter` and `$orderby` beside it and returns at most 1,000
 * results, newest sent first: `since` and `unreadOnly` are applied to the results here.
 * https://learn.microsoft.com/en-us/graph/search-query-parameter
 */
async function* searchMessages(
  ctx: GraphContext,
  folder: string,
  query: MessageQuery,
  limit: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<MessageSummary> {
  const kql = toKql(query.search ?? {});
  if (kql === "") return yield* [];
  const top = Math.max(1, Math.min(1000, query.pageSize ?? 50, limit));
  let url: string | undefined =
    `${ctx.mailboxPath}/mailFolders/${folder}/messages` +
    `?$top=${top}&$select=${SUMMARY_FIELDS}&$search=${encodeURIComponent(searchParameter(kql))}`;
  const seen = new Set<string>();
  let count = 0;
  while (url) {
    const page: MessagePage =
      (await ctx.http.request<MessagePage>(OPERATIONS.searchMessages, "GET", url, { signal })).data ?? {};
    for (const m of page.value ?? []) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      const summary = toSummary(m);
      if (query.unreadOnly && summary.isRead !== false) continue;
      if (query.since && summary.receivedAt && summary.receivedAt < query.since) continue;
      yield summary;
      if (++count >= limit) return;
    }
    url = page["@odata.nextLink"];
  }
}

/**
 * `from:alice (to:bob OR cc:bob) subject:invoice words`: every word of every field must match (AND, by
 * word, as the core contract says). `to` is To or Cc (`recipients:` would add Bcc, which IMAP's `TO`/`CC`
 * do not search). A word KQL would read as syntax — an operator (`OR`, `NOT`…), a `:`, parentheses, a
 * wildcard, a leading `-` — is quoted as a phrase, so a value cannot change the query. Double quotes and
 * backslashes cannot be searched for (the index has no punctuation): they separate words.
 */
export function toKql(search: NonNullable<MessageQuery["search"]>): string {
  const words = (value: string | undefined) => searchWords(value).map(kqlValue);
  return [
    ...words(search.from).map((w) => `from:${w}`),
    ...words(search.to).map((w) => `(to:${w} OR cc:${w})`),
    ...words(search.subject).map((w) => `subject:${w}`),
    ...words(search.text),
  ].join(" ");
}

// KQL's operators (case-sensitive in KQL; quoted in any case here) and the words that need no quotes.
const KQL_OPERATOR = /^(AND|OR|NOT|NEAR|ONEAR|ALL|ANY|NONE|WORDS|XRANK)$/i;
const KQL_PLAIN = /^[\p{L}\p{N}][\p{L}\p{N}@._-]*$/u;

function kqlValue(word: string): string {
  return KQL_PLAIN.test(word) && !KQL_OPERATOR.test(word) ? word : `"${word}"`;
}

/** Graph's `$search` value is one quoted OData string: inner quotes (KQL phrases) are `\"`-escaped. */
function searchParameter(kql: string): string {
  return `"${kql.replace(/["\\]/g, "\\$&")}"`;
}

/** Flag for follow-up (`flag.flagStatus`), or clear it. */
export async function setFlag(
  ctx: GraphContext,
  messageId: string,
  flagged: boolean,
  signal?: AbortSignal,
): Promise<void> {
  await ctx.http.request(OPERATIONS.setFlag, "PATCH", `${ctx.mailboxPath}/messages/${id(messageId)}`, {
    body: { flag: { flagStatus: flagged ? "flagged" : "notFlagged" } },
    signal,
    read: "none",
  });
}

export async function getMessage(
  ctx: GraphContext,
  messageId: string,
  options: GetMessageOptions = {},
): Promise<Message> {
  const { signal } = options;
  const path = `${ctx.mailboxPath}/messages/${id(messageId)}`;
  const { data } = await ctx.http.request<GraphMessage>(
    OPERATIONS.getMessage,
    "GET",
    `${path}?$select=${MESSAGE_FIELDS}&$expand=attachments`,
    { signal },
  );
  const attachments = await readAttachments(ctx, path, data.attachments ?? [], signal);
  const raw = options.raw
    ? (
        await ctx.http.request<Uint8Array>(OPERATIONS.getMessage, "GET", `${path}/$value`, {
          signal,
          read: "bytes",
        })
      ).data
    : undefined;
  return toMessage(data, attachments, raw);
}

async function readAttachments(
  ctx: GraphContext,
  messagePath: string,
  list: GraphFileAttachment[],
  signal: AbortSignal | undefined,
): Promise<ReceivedAttachment[]> {
  return Promise.all(
    list.filter(isFileAttachment).map(async (a) => {
      if (typeof a.contentBytes === "string")
        return toReceivedAttachment(a, Buffer.from(a.contentBytes, "base64"));
      // Large attachments may come without contentBytes: read the raw bytes instead.
      const { data } = await ctx.http.request<Uint8Array>(
        OPERATIONS.getMessage,
        "GET",
        `${messagePath}/attachments/${id(a.id ?? "")}/$value`,
        { signal, read: "bytes" },
      );
      return toReceivedAttachment(a, data);
    }),
  );
}

export async function markRead(
  ctx: GraphContext,
  messageId: string,
  read: boolean,
  signal?: AbortSignal,
): Promise<void> {
  await ctx.http.request(OPERATIONS.markRead, "PATCH", `${ctx.mailboxPath}/messages/${id(messageId)}`, {
    body: { isRead: read },
    signal,
    read: "none",
  });
}

/** Returns the message's new id (Graph gives a moved message a new one). */
export async function moveMessage(
  ctx: GraphContext,
  messageId: string,
  toFolder: string,
  signal?: AbortSignal,
): Promise<string> {
  const destinationId = decodeURIComponent(await resolveFolder(ctx, toFolder, signal));
  const { data } = await ctx.http.request<GraphMessage>(
    OPERATIONS.moveMessage,
    "POST",
    `${ctx.mailboxPath}/messages/${id(messageId)}/move`,
    { body: { destinationId }, signal },
  );
  return data.id;
}

/** Graph's soft delete: the message goes to Recoverable Items, not Deleted Items (move it to "trash" for that). */
export async function deleteMessage(
  ctx: GraphContext,
  messageId: string,
  signal?: AbortSignal,
): Promise<void> {
  await ctx.http.request(OPERATIONS.deleteMessage, "DELETE", `${ctx.mailboxPath}/messages/${id(messageId)}`, {
    signal,
    read: "none",
  });
}

/**
 * Outlook's Delete key: to Deleted Items (the new id is answered); a message already there is deleted
 * for good (`DELETE`: Exchange keeps it in Recoverable Items for a while) and `undefined` answered.
 */
export async function trashMessage(
  ctx: GraphContext,
  messageId: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const [message, trash] = await Promise.all([
    ctx.http.request<Pick<GraphMessage, "parentFolderId">>(
      OPERATIONS.getMessage,
      "GET",
      `${ctx.mailboxPath}/messages/${id(messageId)}?$select=parentFolderId`,
      { signal },
    ),
    ctx.http.request<{ id?: string }>(
      OPERATIONS.listFolders,
      "GET",
      `${ctx.mailboxPath}/mailFolders/${WELL_KNOWN_FOLDERS.trash}?$select=id`,
      { signal },
    ),
  ]);
  const folder = message.data.parentFolderId;
  if (folder !== undefined && folder === trash.data.id) {
    await deleteMessage(ctx, messageId, signal);
    return undefined;
  }
  return moveMessage(ctx, messageId, WELL_KNOWN_FOLDERS.trash, signal);
}

export async function markReadMany(
  ctx: GraphContext,
  ids: readonly string[],
  read: boolean,
  signal?: AbortSignal,
): Promise<BulkResult[]> {
  const outcomes = await ctx.http.batch(
    OPERATIONS.markRead,
    ids.map((m) => ({
      method: "PATCH" as const,
      url: `${ctx.mailboxPath}/messages/${id(m)}`,
      body: { isRead: read },
    })),
    signal,
  );
  return outcomes.map((o, i) =>
    o.ok ? { id: ids[i]!, ok: true } : { id: ids[i]!, ok: false, error: o.error },
  );
}

export async function moveMessages(
  ctx: GraphContext,
  ids: readonly string[],
  toFolder: string,
  signal?: AbortSignal,
): Promise<BulkResult[]> {
  const destinationId = decodeURIComponent(await resolveFolder(ctx, toFolder, signal));
  const outcomes = await ctx.http.batch<GraphMessage>(
    OPERATIONS.moveMessage,
    ids.map((m) => ({
      method: "POST" as const,
      url: `${ctx.mailboxPath}/messages/${id(m)}/move`,
      body: { destinationId },
    })),
    signal,
  );
  return outcomes.map((o, i) =>
    o.ok ? { id: ids[i]!, ok: true, newId: o.body.id } : { id: ids[i]!, ok: false, error: o.error },
  );
}

export async function deleteMessages(
  ctx: GraphContext,
  ids: readonly string[],
  signal?: AbortSignal,
): Promise<BulkResult[]> {
  const outcomes = await ctx.http.batch(
    OPERATIONS.deleteMessage,
    ids.map((m) => ({ method: "DELETE" as const, url: `${ctx.mailboxPath}/messages/${id(m)}` })),
    signal,
  );
  return outcomes.map((o, i) =>
    o.ok ? { id: ids[i]!, ok: true } : { id: ids[i]!, ok: false, error: o.error },
  );
}

/** Several messages in one `$batch` round trip per 20; a failed one rejects the whole call. */
export async function getMessages(
  ctx: GraphContext,
  ids: readonly string[],
  signal?: AbortSignal,
): Promise<Message[]> {
  const outcomes = await ctx.http.batch<GraphMessage>(
    OPERATIONS.getMessage,
    ids.map((m) => ({
      method: "GET" as const,
      url: `${ctx.mailboxPath}/messages/${id(m)}?$select=${MESSAGE_FIELDS}&$expand=attachments`,
    })),
    signal,
  );
  return Promise.all(
    outcomes.map(async (o, i) => {
      if (!o.ok) throw o.error;
      const path = `${ctx.mailboxPath}/messages/${id(ids[i]!)}`;
      return toMessage(o.body, await readAttachments(ctx, path, o.body.attachments ?? [], signal));
    }),
  );
}
