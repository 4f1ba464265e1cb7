import { type AttachmentDownload, type AttachmentInfo, M365MailError } from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import { SOURCE } from "./graph-errors.js";
import type { GraphFileAttachment } from "./graph-message.js";
import { OPERATIONS } from "./operations.js";

const FIELDS = "id,name,contentType,size,isInline";

function toInfo(a: GraphFileAttachment): AttachmentInfo {
  return {
    id: a.id ?? "",
    filename: a.name ?? "attachment",
    contentType: a.contentType ?? "application/octet-stream",
    ...(a.size !== undefined ? { size: a.size } : {}),
    ...(a.isInline !== undefined ? { inline: a.isInline } : {}),
  };
}

/** The message's attachments without their bytes. */
export async function listAttachments(
  ctx: GraphContext,
  messageId: string,
  signal?: AbortSignal,
): Promise<AttachmentInfo[]> {
  const { data } = await ctx.http.request<{ value?: GraphFileAttachment[] }>(
    OPERATIONS.listAttachments,
    "GET",
    `${ctx.mailboxPath}/messages/${encodeURIComponent(messageId)}/attachments?$select=${FIELDS}`,
    { signal },
  );
  return (data.value ?? []).map(toInfo);
}

/**
 * One attachment's bytes from `…/attachments/{id}/$value`, streamed: a 150 MB attachment never sits
 * in memory. The request's concurrency slot is freed when the headers arrive.
 */
export async function downloadAttachment(
  ctx: GraphContext,
  messageId: string,
  attachmentId: string,
  signal?: AbortSignal,
): Promise<AttachmentDownload> {
  const base = `${ctx.mailboxPath}/messages/${encodeURIComponent(messageId)}/attachments/${encodeURIComponent(attachmentId)}`;
  const { data: meta } = await ctx.http.request<GraphFileAttachment>(
    OPERATIONS.downloadAttachment,
    "GET",
    `${base}?$select=${FIELDS}`,
    { signal },
  );
  if (meta["@odata.type"] && meta["@odata.type"] !== "#microsoft.graph.fileAttachment") {
    throw new M365MailError(
      "NOT_SUPPORTED",
      `attachment ${attachmentId} is not a file (${meta["@odata.type"]})`,
      {
        source: SOURCE,
        hint: "Only file attachments can be downloaded; open item and reference attachments in Outlook.",
      },
    );
  }
  const { data: body } = await ctx.http.request<ReadableStream<Uint8Array>>(
    OPERATIONS.downloadAttachment,
    "GET",
    `${base}/$value`,
    { signal, read: "stream" },
  );
  return { ...toInfo(meta), content: body as unknown as AsyncIterable<Uint8Array> };
}
