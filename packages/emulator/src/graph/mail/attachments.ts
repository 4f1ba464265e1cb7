/** Message attachments: list, get, `$value`, add, delete, and large-attachment upload sessions. */
import type { DirectoryUser } from "../../directory.js";
import { GraphError, invalidRequest, notFound } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import type { MessageRecord } from "../mailbox-view.js";
import { ATTACHMENT_PROPERTIES, attachmentIndex, attachmentResource } from "../message-resource.js";
import { composeMime, type GraphFileAttachmentInput, isBase64, withAttachments } from "../mime.js";
import { applySelect, parseSelect } from "../odata.js";
import { draftInputOf } from "./draft-input.js";
import { context, type MessageIds, parseJson, requireMessage } from "./route.js";

/** Upload sessions accept 3 MB to 150 MB; below, a plain POST of the attachment is the way. */
export const MIN_UPLOAD_SESSION_BYTES = 3 * 1024 * 1024;
export const MAX_ATTACHMENT_BYTES = 150 * 1024 * 1024;

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
