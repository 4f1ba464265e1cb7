/** `messages`: list, get, `$value`, update, delete, move. */
import { badRequest, GraphError } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import { matchesSearch, parseMessageSearch } from "../kql-search.js";
import type { MessageRecord } from "../mailbox-view.js";
import { MESSAGE_PROPERTIES } from "../message-resource.js";
import { composeMime, type GraphMessageInput } from "../mime.js";
import {
  checkFilterOrder,
  parseMessageFilter,
  parseMessageOrderBy,
  parseSelect,
  parseSkip,
  parseTop,
} from "../odata.js";
import { draftInputOf } from "./draft-input.js";
import {
  bodyPreferenceHeaders,
  context,
  expandsAttachments,
  type MessageIds,
  nextPage,
  parseJson,
  pathSegment,
  render,
  requireFolder,
  requireMessage,
} from "./route.js";

export async function listMessages(route: RouteContext): Promise<GraphResponse> {
  const { req, service, mailbox } = route;
  const folderSegment =
    pathSegment(route, 0).toLowerCase() === "mailfolders" ? pathSegment(route, 1) : undefined;
  const folder = folderSegment !== undefined ? await requireFolder(route, folderSegment) : undefined;
  const top = parseTop(req.query, 10);
  const skip = parseSkip(req.query);
  const select = parseSelect(req.query, MESSAGE_PROPERTIES, "microsoft.graph.message");
  const search = parseMessageSearch(req.query);
  const filter = parseMessageFilter(req.query);
  const order = parseMessageOrderBy(req.query);
  checkFilterOrder(req.query, filter, order);
  expandsAttachments(route);
  let records = await service.view.messages(mailbox.upn, folder?.id);
  if (search) {
    const matches = await Promise.all(
      records.map(async (record) => matchesSearch(await record.parsed(), search)),
    );
    records = records.filter((_, i) => matches[i]);
  }
  if (filter?.isRead !== undefined) records = records.filter((record) => record.isRead === filter.isRead);
  if (filter?.internetMessageId !== undefined) {
    const wanted = filter.internetMessageId;
    const matches = await Promise.all(
      records.map(async (record) => (await record.parsed()).messageId === wanted),
    );
    records = records.filter((_, i) => matches[i]);
  }
  if (filter?.receivedAfter) {
    const { time, inclusive } = filter.receivedAfter;
    // Graph compares at whole seconds (its instants have no milliseconds).
    records = records.filter((record) => {
      const received = Math.floor(record.receivedAt.getTime() / 1000) * 1000;
      return inclusive ? received >= time : received > time;
    });
  }
  // $search results come newest sent first; $orderby is refused with $search.
  const sortBy = search ? "sentDateTime" : order.property;
  const keyed = await Promise.all(
    records.map(async (record) => ({ record, time: (await sortTime(record, sortBy)).getTime() })),
  );
  keyed.sort(
    (x, y) =>
      (order.descending || search ? y.time - x.time : x.time - y.time) ||
      (x.record.id < y.record.id ? -1 : 1),
  );
  const page = keyed.slice(skip, skip + top);
  const value = await Promise.all(page.map(({ record }) => render(route, record, select)));
  const entity = folder ? `mailFolders('${folder.id}')/messages` : "messages";
  return {
    status: 200,
    headers: bodyPreferenceHeaders(route),
    json: {
      "@odata.context": `${context(route, entity)}${select ? `(${select.join(",")})` : ""}`,
      ...nextPage(route, skip + top, keyed.length),
      value,
    },
  };
}

async function sortTime(record: MessageRecord, property: string): Promise<Date> {
  if (property === "sentDateTime") return (await record.parsed()).date ?? record.receivedAt;
  if (property === "lastModifiedDateTime") return record.modifiedAt;
  return record.receivedAt;
}

export async function getMessage(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  const select = parseSelect(route.req.query, MESSAGE_PROPERTIES, "microsoft.graph.message");
  return {
    status: 200,
    headers: bodyPreferenceHeaders(route),
    json: { "@odata.context": context(route, "messages/$entity"), ...(await render(route, record, select)) },
  };
}

/** The MIME source. Graph answers `$value` with a text/plain content type. */
export async function getMessageMime(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  return { status: 200, raw: await record.raw(), contentType: "text/plain" };
}

export async function updateMessage(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  let record = await requireMessage(route, ids);
  const patch = parseJson<Record<string, unknown>>(route);
  if (patch === null || typeof patch !== "object" || Array.isArray(patch))
    throw badRequest("Empty Payload. JSON content expected.");
  const view = route.service.view;
  const upn = route.mailbox.upn;
  const draftFields = [
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "importance",
    "from",
  ];
  const known = new Set([
    "isread",
    "flag",
    "categories",
    "inferenceclassification",
    ...draftFields.map((f) => f.toLowerCase()),
  ]);
  for (const key of Object.keys(patch)) {
    if (!known.has(key.toLowerCase()) && !key.startsWith("@odata.")) {
      throw badRequest(
        `The property '${key}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      );
    }
  }
  if (draftFields.some((field) => field in patch)) {
    if (!record.isDraft) {
      throw new GraphError(
        400,
        "ErrorInvalidPropertyUpdateSentMessage",
        "Update operation is invalid for property of a sent message.",
      );
    }
    const merged = { ...(await draftInputOf(await record.parsed())), ...(patch as GraphMessageInput) };
    const parsed = await record.parsed();
    // A reply draft keeps its threading when its text is changed.
    const references = Array.isArray(parsed.references)
      ? parsed.references
      : parsed.references
        ? [parsed.references]
        : [];
    const raw = await composeMime(merged, {
      mailbox: { address: upn, name: route.mailbox.displayName },
      keepBcc: true,
      ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
      ...(parsed.inReplyTo ? { inReplyTo: parsed.inReplyTo } : {}),
      ...(references.length > 0 ? { references } : {}),
    });
    record = await view.replace(upn, record.id, raw);
  }
  if (typeof patch.isRead === "boolean") record = await view.setRead(upn, record.id, patch.isRead);
  else if ("isRead" in patch)
    throw badRequest("Cannot convert the literal to the expected type 'Edm.Boolean'.");
  const flag = patch.flag as { flagStatus?: string } | undefined;
  if (flag && typeof flag === "object" && typeof flag.flagStatus === "string") {
    record = await view.setFlagged(upn, record.id, flag.flagStatus.toLowerCase() === "flagged");
  }
  return {
    status: 200,
    json: {
      "@odata.context": context(route, "messages/$entity"),
      ...(await render(route, record, undefined)),
    },
  };
}

/**
 * Graph's DELETE is a soft delete: the message leaves every folder a client sees (Exchange keeps it in
 * the hidden Recoverable Items, which is not emulated); moving to Deleted Items is `move` with
 * `deleteditems`. `permanentDelete` does the same here.
 */
export async function deleteMessage(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  await route.service.view.remove(route.mailbox.upn, record.id);
  return { status: 204 };
}

export async function moveMessage(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  const body = parseJson<{ destinationId?: unknown; DestinationId?: unknown }>(route);
  const destination = body?.destinationId ?? body?.DestinationId;
  if (typeof destination !== "string" || destination === "") {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "The value of the parameter 'DestinationId' is empty.",
    );
  }
  const folder = await requireFolder(route, destination);
  const moved =
    folder.id === record.folderId
      ? record
      : await route.service.view.move(route.mailbox.upn, record.id, folder.id);
  return {
    status: 201,
    json: {
      "@odata.context": context(route, "messages/$entity"),
      ...(await render(route, moved, undefined)),
    },
  };
}
