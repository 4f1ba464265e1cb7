import { randomBytes } from "node:crypto";
import type { AddressObject, ParsedMail } from "mailparser";
import type { DirectoryUser } from "../directory.js";
import { isDelegate, isSelf } from "./graph-auth.js";
import { badRequest, GraphError, invalidRequest, notFound } from "./graph-error.js";
import type { RouteContext } from "./graph-service.js";
import type { GraphResponse } from "./graph-types.js";
import type { FolderInfo, MessageRecord } from "./mailbox-view.js";
import {
  ATTACHMENT_PROPERTIES,
  attachmentIndex,
  attachmentResource,
  MESSAGE_PROPERTIES,
  messageResource,
  preferredBodyType,
} from "./message-resource.js";
import {
  composeMime,
  type GraphFileAttachmentInput,
  type GraphMessageInput,
  type GraphRecipient,
  isBase64,
  parseMime,
  recipientsOf,
  stripBcc,
  withAttachments,
} from "./mime.js";
import {
  applySelect,
  checkFilterOrder,
  nextLinkWithSkip,
  odataQueryString,
  parseMessageFilter,
  parseMessageOrderBy,
  parseSelect,
  parseSkip,
  parseTop,
  preferredPageSize,
} from "./odata.js";

export interface MessageIds {
  messageId: string;
  /** Set when the route was `mailFolders/{folderId}/messages/{messageId}`. */
  folderId?: string;
  attachmentId?: string;
}

const FOLDER_PROPERTIES = new Set(
  [
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
  ].map((name) => name.toLowerCase()),
);

/** Upload sessions accept 3 MB to 150 MB; below, a plain POST of the attachment is the way. */
export const MIN_UPLOAD_SESSION_BYTES = 3 * 1024 * 1024;
export const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024;

function context(route: RouteContext, entity: string): string {
  return `${route.service.origin}/v1.0/$metadata#users('${encodeURIComponent(route.mailbox.upn)}')/${entity}`;
}

/** Graph's answer for a JSON body it cannot read. */
export function parseJson<T>(route: RouteContext): T {
  const text = route.req.body.toString("utf8");
  if (text.trim() === "") throw badRequest("Empty Payload. JSON content expected.");
  try {
    return JSON.parse(text) as T;
  } catch {
    throw badRequest(
      "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    );
  }
}

// ---------------------------------------------------------------- folders

function folderResource(folder: FolderInfo): Record<string, unknown> {
  return {
    id: folder.id,
    displayName: folder.displayName,
    parentFolderId: folder.parentFolderId,
    childFolderCount: folder.childFolderCount,
    unreadItemCount: folder.unreadItemCount,
    totalItemCount: folder.totalItemCount,
    isHidden: folder.isHidden,
  };
}

async function requireFolder(route: RouteContext, idOrName: string): Promise<FolderInfo> {
  const folder = await route.service.view.folder(route.mailbox.upn, idOrName);
  if (!folder) throw notFound();
  return folder;
}

function folderPage(route: RouteContext, folders: FolderInfo[], entity: string): GraphResponse {
  const { req, service } = route;
  const top = parseTop(req.query, 10);
  const skip = parseSkip(req.query);
  const select = parseSelect(req.query, FOLDER_PROPERTIES, "microsoft.graph.mailFolder");
  const page = folders.slice(skip, skip + top).map((folder) => applySelect(folderResource(folder), select));
  return {
    status: 200,
    json: {
      "@odata.context": context(route, entity),
      ...(skip + top < folders.length
        ? {
            "@odata.nextLink": nextLinkWithSkip(
              service.origin,
              req.path.replace(/\/+$/, ""),
              req.query,
              skip + top,
            ),
          }
        : {}),
      value: page,
    },
  };
}

export async function listFolders(route: RouteContext): Promise<GraphResponse> {
  const folders = await route.service.view.folders(route.mailbox.upn);
  return folderPage(
    route,
    folders.filter(
      (folder) =>
        folder.isTopLevel && (!folder.isHidden || route.req.query.get("includeHiddenFolders") === "true"),
    ),
    "mailFolders",
  );
}

export async function getFolder(route: RouteContext): Promise<GraphResponse> {
  const folderId = pathSegment(route, 1);
  const folder = await requireFolder(route, folderId);
  const select = parseSelect(route.req.query, FOLDER_PROPERTIES, "microsoft.graph.mailFolder");
  return {
    status: 200,
    json: {
      "@odata.context": context(route, "mailFolders/$entity"),
      ...applySelect(folderResource(folder), select),
    },
  };
}

export async function listChildFolders(route: RouteContext): Promise<GraphResponse> {
  const parent = await requireFolder(route, pathSegment(route, 1));
  const folders = await route.service.view.folders(route.mailbox.upn);
  return folderPage(
    route,
    folders.filter((folder) => folder.parentFolderId === parent.id),
    `mailFolders('${parent.id}')/childFolders`,
  );
}

/** Segment `index` after the mailbox prefix (`/me` or `/users/{id}`), decoded. */
function pathSegment(route: RouteContext, index: number): string {
  const segments = route.req.path
    .split("/")
    .filter(Boolean)
    .flatMap((raw) => {
      let segment = raw;
      try {
        segment = decodeURIComponent(raw);
      } catch {}
      const key = /^([A-Za-z]+)\('(.*)'\)$/.exec(segment);
      return key ? [key[1]!, key[2]!.replace(/''/g, "'")] : [segment];
    });
  const offset = segments[0]?.toLowerCase() === "me" ? 1 : 2;
  return segments[offset + index] ?? "";
}

// ---------------------------------------------------------------- messages

function expandsAttachments(route: RouteContext): boolean {
  const expand = route.req.query.get("$expand");
  if (expand === null || expand.trim() === "") return false;
  const names = expand.split(",").map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (name !== "attachments") {
      throw badRequest(
        `Parsing OData Select and Expand failed: Could not find a property named '${name}' on type 'microsoft.graph.message'.`,
      );
    }
  }
  return true;
}

async function render(
  route: RouteContext,
  record: MessageRecord,
  select: string[] | undefined,
): Promise<Record<string, unknown>> {
  const preferBody = preferredBodyType(route.req.headers.prefer);
  const withHeaders = select?.some((name) => name.toLowerCase() === "internetmessageheaders") ?? false;
  const resource = await messageResource(record, {
    ...(preferBody ? { preferBody } : {}),
    expandAttachments: expandsAttachments(route),
    withHeaders,
  });
  const selected = applySelect(
    resource,
    select ? [...select, ...(resource.attachments ? ["attachments"] : [])] : undefined,
  );
  return selected;
}

function bodyPreferenceHeaders(route: RouteContext): Record<string, string> {
  const prefer = preferredBodyType(route.req.headers.prefer);
  return prefer ? { "Preference-Applied": `outlook.body-content-type="${prefer}"` } : {};
}

export async function listMessages(route: RouteContext): Promise<GraphResponse> {
  const { req, service, mailbox } = route;
  const folderSegment =
    pathSegment(route, 0).toLowerCase() === "mailfolders" ? pathSegment(route, 1) : undefined;
  const folder = folderSegment !== undefined ? await requireFolder(route, folderSegment) : undefined;
  const top = parseTop(req.query, 10);
  const skip = parseSkip(req.query);
  const select = parseSelect(req.query, MESSAGE_PROPERTIES, "microsoft.graph.message");
  const filter = parseMessageFilter(req.query);
  const order = parseMessageOrderBy(req.query);
  checkFilterOrder(req.query, filter, order);
  expandsAttachments(route);
  let records = await service.view.messages(mailbox.upn, folder?.id);
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
  const keyed = await Promise.all(
    records.map(async (record) => ({ record, time: (await sortTime(record, order.property)).getTime() })),
  );
  keyed.sort(
    (x, y) => (order.descending ? y.time - x.time : x.time - y.time) || (x.record.id < y.record.id ? -1 : 1),
  );
  const page = keyed.slice(skip, skip + top);
  const value = await Promise.all(page.map(({ record }) => render(route, record, select)));
  const entity = folder ? `mailFolders('${folder.id}')/messages` : "messages";
  return {
    status: 200,
    headers: bodyPreferenceHeaders(route),
    json: {
      "@odata.context": `${context(route, entity)}${select ? `(${select.join(",")})` : ""}`,
      ...(skip + top < keyed.length
        ? {
            "@odata.nextLink": nextLinkWithSkip(
              service.origin,
              req.path.replace(/\/+$/, ""),
              req.query,
              skip + top,
            ),
          }
        : {}),
      value,
    },
  };
}

async function sortTime(record: MessageRecord, property: string): Promise<Date> {
  if (property === "sentDateTime") return (await record.parsed()).date ?? record.receivedAt;
  if (property === "lastModifiedDateTime") return record.modifiedAt;
  return record.receivedAt;
}

async function requireMessage(route: RouteContext, ids: MessageIds): Promise<MessageRecord> {
  const record = await route.service.view.message(route.mailbox.upn, ids.messageId);
  if (!record) throw notFound();
  if (ids.folderId !== undefined) {
    const folder = await route.service.view.folder(route.mailbox.upn, ids.folderId);
    if (!folder || folder.id !== record.folderId) throw notFound();
  }
  return record;
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
    const raw = await composeMime(merged, {
      mailbox: { address: upn, name: route.mailbox.displayName },
      keepBcc: true,
      ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
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

// ---------------------------------------------------------------- attachments

export async function listAttachments(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  const select = parseSelect(route.req.query, ATTACHMENT_PROPERTIES, "microsoft.graph.attachment");
  const parsed = await record.parsed();
  return {
    status: 200,
    json: {
      "@odata.context": context(route, `messages('${record.id}')/attachments`),
      value: parsed.attachments.map((attachment, index) =>
        applySelect(attachmentResource(record.id, attachment, index, record.modifiedAt, true), select),
      ),
    },
  };
}

async function requireAttachment(route: RouteContext, ids: MessageIds) {
  const record = await requireMessage(route, ids);
  const index = attachmentIndex(record.id, ids.attachmentId ?? "");
  const parsed = await record.parsed();
  const attachment = index === undefined ? undefined : parsed.attachments[index];
  if (index === undefined || !attachment) throw notFound();
  return { record, attachment, index };
}

export async function getAttachment(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const { record, attachment, index } = await requireAttachment(route, ids);
  const select = parseSelect(route.req.query, ATTACHMENT_PROPERTIES, "microsoft.graph.attachment");
  return {
    status: 200,
    json: {
      "@odata.context": context(route, `messages('${record.id}')/attachments/$entity`),
      ...applySelect(attachmentResource(record.id, attachment, index, record.modifiedAt, true), select),
    },
  };
}

export async function getAttachmentContent(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const { attachment } = await requireAttachment(route, ids);
  return {
    status: 200,
    raw: attachment.content,
    contentType: attachment.contentType || "application/octet-stream",
  };
}

export async function deleteAttachment(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const { record, index } = await requireAttachment(route, ids);
  if (!record.isDraft)
    throw new GraphError(
      400,
      "ErrorInvalidPropertyUpdateSentMessage",
      "Update operation is invalid for property of a sent message.",
    );
  const parsed = await record.parsed();
  const input = await draftInputOf(parsed);
  input.attachments = (input.attachments ?? []).filter((_, i) => i !== index);
  const raw = await composeMime(input, {
    mailbox: { address: route.mailbox.upn, name: route.mailbox.displayName },
    keepBcc: true,
    ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
  });
  await route.service.view.replace(route.mailbox.upn, record.id, raw);
  return { status: 204 };
}

export async function addAttachment(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  const input = parseJson<GraphFileAttachmentInput>(route);
  const type = (input?.["@odata.type"] ?? "").replace(/^#/, "").toLowerCase();
  if (type !== "microsoft.graph.fileattachment") {
    throw invalidRequest("The @odata.type of the attachment must be '#microsoft.graph.fileAttachment'.");
  }
  if (!input.name) throw invalidRequest("The attachment name is required.");
  if (typeof input.contentBytes !== "string" || !isBase64(input.contentBytes)) {
    throw invalidRequest("The contentBytes of a file attachment must be a base64 string.");
  }
  const content = Buffer.from(input.contentBytes, "base64");
  const updated = await attach(route, record, {
    filename: input.name,
    content,
    contentType: input.contentType ?? "application/octet-stream",
    ...(input.isInline ? { isInline: true } : {}),
    ...(input.contentId ? { contentId: input.contentId } : {}),
  });
  const parsed = await updated.record.parsed();
  const attachment = parsed.attachments[updated.index]!;
  return {
    status: 201,
    json: {
      "@odata.context": context(route, `messages('${record.id}')/attachments/$entity`),
      ...attachmentResource(updated.record.id, attachment, updated.index, updated.record.modifiedAt, true),
    },
  };
}

/** Appends an attachment to a message, keeping its id; returns the attachment's index. */
export async function attach(
  route: { service: RouteContext["service"]; mailbox: DirectoryUser },
  record: MessageRecord,
  attachment: {
    filename: string;
    content: Buffer;
    contentType: string;
    isInline?: boolean;
    contentId?: string;
  },
): Promise<{ record: MessageRecord; index: number }> {
  const before = (await record.parsed()).attachments.length;
  const raw = await withAttachments(await record.raw(), [attachment]);
  const updated = await route.service.view.replace(route.mailbox.upn, record.id, raw);
  return { record: updated, index: before };
}

export async function createUploadSession(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  const body = parseJson<{
    AttachmentItem?: Record<string, unknown>;
    attachmentItem?: Record<string, unknown>;
  }>(route);
  const item = body?.AttachmentItem ?? body?.attachmentItem;
  if (!item || typeof item !== "object") {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "The value of the parameter 'AttachmentItem' is empty.",
    );
  }
  if (String(item.attachmentType ?? "").toLowerCase() !== "file") {
    throw invalidRequest("Only attachmentType 'file' is supported.");
  }
  const size = Number(item.size);
  if (typeof item.name !== "string" || item.name === "")
    throw invalidRequest("The attachment name is required.");
  if (!Number.isInteger(size) || size < MIN_UPLOAD_SESSION_BYTES) {
    // Source: https://learn.microsoft.com/en-us/graph/outlook-large-attachments#errors
    throw new GraphError(
      400,
      "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
      "Attachment size must be greater than the minimum size.",
    );
  }
  if (size > MAX_ATTACHMENT_BYTES) {
    throw new GraphError(
      400,
      "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
      "Attachment size must be less than the maximum size.",
    );
  }
  const session = route.service.uploads.create({
    owner: route.mailbox,
    tenantId: String(route.req.principal.claims.tid ?? ""),
    messageId: record.id,
    name: item.name,
    size,
    contentType: typeof item.contentType === "string" ? item.contentType : "application/octet-stream",
    isInline: item.isInline === true,
    ...(typeof item.contentId === "string" ? { contentId: item.contentId } : {}),
  });
  return {
    status: 201,
    json: {
      "@odata.context": `${route.service.origin}/v1.0/$metadata#microsoft.graph.uploadSession`,
      uploadUrl: session.uploadUrl,
      expirationDateTime: session.expiresAt.toISOString(),
      nextExpectedRanges: ["0-"],
    },
  };
}

// ---------------------------------------------------------------- drafts and sending

/** The writable fields of a stored message, to recompose it after a change. */
async function draftInputOf(parsed: ParsedMail): Promise<GraphMessageInput> {
  const list = (value: AddressObject | AddressObject[] | undefined): GraphRecipient[] =>
    (Array.isArray(value) ? value : value ? [value] : [])
      .flatMap((group) => group.value)
      .filter((entry) => entry.address)
      .map((entry) => ({ emailAddress: { name: entry.name ?? "", address: entry.address! } }));
  const html = typeof parsed.html === "string" ? parsed.html : undefined;
  return {
    subject: parsed.subject ?? "",
    body: html ? { contentType: "html", content: html } : { contentType: "text", content: parsed.text ?? "" },
    ...(list(parsed.from)[0] ? { from: list(parsed.from)[0]! } : {}),
    toRecipients: list(parsed.to),
    ccRecipients: list(parsed.cc),
    bccRecipients: list(parsed.bcc),
    replyTo: list(parsed.replyTo),
    attachments: parsed.attachments.map((attachment) => ({
      "@odata.type": "#microsoft.graph.fileAttachment",
      name: attachment.filename ?? "attachment",
      contentType: attachment.contentType,
      contentBytes: attachment.content.toString("base64"),
      isInline: attachment.contentDisposition === "inline",
      ...(attachment.contentId ? { contentId: attachment.contentId.replace(/^<|>$/g, "") } : {}),
    })),
  };
}

export async function createMessage(route: RouteContext): Promise<GraphResponse> {
  const input = parseJson<GraphMessageInput>(route);
  const folderSegment =
    pathSegment(route, 0).toLowerCase() === "mailfolders" ? pathSegment(route, 1) : "drafts";
  const folder = await requireFolder(route, folderSegment);
  checkSendAs(route, input.from);
  const raw = await composeMime(input, {
    mailbox: { address: route.mailbox.upn, name: route.mailbox.displayName },
    keepBcc: true,
  });
  const record = await route.service.view.append(route.mailbox.upn, folder.id, raw, {
    isDraft: true,
    isRead: true,
  });
  return {
    status: 201,
    json: {
      "@odata.context": context(route, "messages/$entity"),
      ...(await render(route, record, undefined)),
    },
  };
}

/**
 * Sending as another mailbox needs Exchange's Send As right on it (here: being one of its delegates).
 */
function checkSendAs(route: RouteContext, from: GraphRecipient | undefined): void {
  const address = from?.emailAddress?.address?.toLowerCase();
  if (!address || address === route.mailbox.upn.toLowerCase()) return;
  const owner = route.service.ctx.findUser(address);
  const principal = route.req.principal;
  if (owner && (isSelf(principal, owner) || isDelegate(principal, owner))) return;
  throw new GraphError(
    403,
    "ErrorSendAsDenied",
    "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
  );
}

export interface SendMailBody {
  message?: GraphMessageInput;
  saveToSentItems?: boolean | string;
}

export async function sendMail(route: RouteContext): Promise<GraphResponse> {
  const { req, service, mailbox } = route;
  service.ctx.counters.increment("graph.sendMail");
  const contentType = (req.headers["content-type"] ?? "application/json").toLowerCase();
  let sentCopy: Buffer;
  let recipients: string[];
  let save = true;
  if (contentType.startsWith("text/plain")) {
    const text = req.body.toString("latin1").trim();
    if (text === "" || !isBase64(text)) {
      throw new GraphError(
        400,
        "ErrorMimeContentInvalidBase64String",
        "Invalid base64 string for MIME content.",
      );
    }
    sentCopy = completeMime(Buffer.from(text.replace(/\s+/g, ""), "base64"), mailbox);
    const parsed = await parseMime(sentCopy);
    const fromAddress = addressesOf(parsed.from)[0];
    checkSendAs(route, fromAddress ? { emailAddress: { address: fromAddress } } : undefined);
    recipients = [...addressesOf(parsed.to), ...addressesOf(parsed.cc), ...addressesOf(parsed.bcc)];
  } else {
    const body = parseJson<SendMailBody>(route);
    if (!body?.message || typeof body.message !== "object") {
      throw new GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.");
    }
    save = !(body.saveToSentItems === false || String(body.saveToSentItems).toLowerCase() === "false");
    checkSendAs(route, body.message.from);
    recipients = recipientsOf(body.message);
    sentCopy = await composeMime(body.message, {
      mailbox: { address: mailbox.upn, name: mailbox.displayName },
      keepBcc: true,
    });
  }
  if (recipients.length === 0) {
    throw new GraphError(
      400,
      "ErrorInvalidRecipients",
      "At least one recipient is required, but none were found.",
    );
  }
  await deliver(route, sentCopy, recipients);
  if (save) await service.view.append(mailbox.upn, "sentitems", sentCopy, { isRead: true });
  return { status: 202 };
}

export async function sendDraft(route: RouteContext, ids: MessageIds): Promise<GraphResponse> {
  const record = await requireMessage(route, ids);
  route.service.ctx.counters.increment("graph.send");
  if (!record.isDraft) {
    throw new GraphError(400, "ErrorInvalidOperation", "Only a draft message can be sent.");
  }
  const raw = await record.raw();
  const parsed = await record.parsed();
  const from = addressesOf(parsed.from)[0];
  checkSendAs(route, from ? { emailAddress: { address: from } } : undefined);
  const recipients = [...addressesOf(parsed.to), ...addressesOf(parsed.cc), ...addressesOf(parsed.bcc)];
  if (recipients.length === 0) {
    throw new GraphError(
      400,
      "ErrorInvalidRecipients",
      "At least one recipient is required, but none were found.",
    );
  }
  await deliver(route, raw, recipients);
  // The draft itself becomes the Sent Items copy, as in Outlook.
  const view = route.service.view;
  await view.append(route.mailbox.upn, "sentitems", raw, { isRead: true });
  await view.remove(route.mailbox.upn, record.id);
  return { status: 202 };
}

function addressesOf(value: AddressObject | AddressObject[] | undefined): string[] {
  return (Array.isArray(value) ? value : value ? [value] : [])
    .flatMap((group) => group.value)
    .map((entry) => entry.address ?? "")
    .filter(Boolean);
}

/** Exchange adds From, Date and Message-ID when a submitted MIME message lacks them. */
function completeMime(raw: Buffer, mailbox: DirectoryUser): Buffer {
  const text = raw.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const add: string[] = [];
  if (!/^from:/im.test(head)) add.push(`From: ${mailbox.displayName} <${mailbox.upn}>`);
  if (!/^date:/im.test(head)) add.push(`Date: ${new Date().toUTCString().replace("GMT", "+0000")}`);
  if (!/^message-id:/im.test(head))
    add.push(`Message-ID: <${randomBytes(16).toString("hex")}@${mailbox.upn.split("@")[1]}>`);
  return add.length === 0 ? raw : Buffer.concat([Buffer.from(`${add.join("\r\n")}\r\n`, "latin1"), raw]);
}

/**
 * Delivers into each recipient's Inbox when the recipient is a mailbox of the emulated directory;
 * other recipients are accepted and dropped (counted as `graph.dropped`), as the outside world is not
 * emulated. Recipients never see the Bcc header.
 */
async function deliver(route: RouteContext, raw: Buffer, recipients: string[]): Promise<void> {
  const { service } = route;
  const delivered = stripBcc(raw);
  const unique = [...new Set(recipients.map((address) => address.toLowerCase()))];
  for (const address of unique) {
    const user = service.ctx.findUser(address);
    if (!user) {
      service.ctx.counters.increment("graph.dropped");
      continue;
    }
    await service.view.append(user.upn, "inbox", delivered, { isRead: false });
    service.ctx.counters.increment("graph.delivered");
  }
}

// ---------------------------------------------------------------- delta

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
