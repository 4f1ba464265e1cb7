import {
  type DraftRef,
  generateMessageId,
  type OutgoingAttachment,
  type OutgoingMessage,
  parseAddress,
  parseAddressList,
  type SendResult,
  validateOutgoingMessage,
} from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import {
  attachmentBytes,
  fileAttachmentJson,
  type GraphMessage,
  INLINE_ATTACHMENT_LIMIT,
  toGraphMessage,
  toGraphRecipient,
} from "./graph-message.js";
import { OPERATIONS } from "./operations.js";
import { uploadAttachment } from "./send.js";

const path = (ctx: GraphContext, id: string) => `${ctx.mailboxPath}/messages/${encodeURIComponent(id)}`;

/** Attachments of a draft: small ones inline in one POST each, those over 3 MB through an upload session. */
export async function addDraftAttachments(
  ctx: GraphContext,
  draftPath: string,
  attachments: readonly OutgoingAttachment[],
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const attachment of attachments) {
    const bytes = attachmentBytes(attachment);
    if (bytes.byteLength > INLINE_ATTACHMENT_LIMIT) {
      await uploadAttachment(ctx, draftPath, attachment, bytes, signal);
    } else {
      await ctx.http.request(OPERATIONS.addAttachment, "POST", `${draftPath}/attachments`, {
        body: fileAttachmentJson(attachment),
        signal,
        read: "none",
      });
    }
  }
}

/** Saves the message in Drafts (`POST /messages`), attachments included. */
export async function createDraft(
  ctx: GraphContext,
  message: OutgoingMessage,
  signal?: AbortSignal,
): Promise<DraftRef> {
  validateOutgoingMessage({ ...message, raw: undefined }, { requireRecipients: false });
  const fromAddress = message.from !== undefined ? parseAddress(message.from).address : ctx.mailbox;
  const messageId = message.messageId ?? generateMessageId(fromAddress);
  const { data } = await ctx.http.request<GraphMessage>(
    OPERATIONS.createDraft,
    "POST",
    `${ctx.mailboxPath}/messages`,
    {
      body: toGraphMessage(message, messageId, []),
      signal,
    },
  );
  await addDraftAttachments(ctx, path(ctx, data.id), message.attachments ?? [], signal);
  return { id: data.id, messageId: data.internetMessageId ?? messageId };
}

/**
 * Changes the fields given (`PATCH`): subject, body, recipients. Attachments given are added;
 * existing ones stay. Graph keeps the draft's id.
 */
export async function updateDraft(
  ctx: GraphContext,
  id: string,
  message: OutgoingMessage,
  signal?: AbortSignal,
): Promise<DraftRef> {
  validateOutgoingMessage({ ...message, raw: undefined }, { requireRecipients: false });
  const patch: Record<string, unknown> = {};
  if (message.subject !== undefined) patch.subject = message.subject;
  if (message.html !== undefined) patch.body = { contentType: "HTML", content: message.html };
  else if (message.text !== undefined) patch.body = { contentType: "Text", content: message.text };
  if (message.to !== undefined) patch.toRecipients = parseAddressList(message.to).map(toGraphRecipient);
  if (message.cc !== undefined) patch.ccRecipients = parseAddressList(message.cc).map(toGraphRecipient);
  if (message.bcc !== undefined) patch.bccRecipients = parseAddressList(message.bcc).map(toGraphRecipient);
  const { data } = await ctx.http.request<GraphMessage>(OPERATIONS.updateDraft, "PATCH", path(ctx, id), {
    body: patch,
    signal,
  });
  await addDraftAttachments(ctx, path(ctx, id), message.attachments ?? [], signal);
  return { id: data?.id ?? id, ...(data?.internetMessageId ? { messageId: data.internetMessageId } : {}) };
}

/** Sends a saved draft (`POST …/send`); Exchange files it in Sent Items. */
export async function sendDraft(ctx: GraphContext, id: string, signal?: AbortSignal): Promise<SendResult> {
  const { data } = await ctx.http.request<GraphMessage & { bccRecipients?: GraphMessage["toRecipients"] }>(
    OPERATIONS.getMessage,
    "GET",
    `${path(ctx, id)}?$select=id,internetMessageId,toRecipients,ccRecipients,bccRecipients`,
    { signal },
  );
  await ctx.http.request(OPERATIONS.sendDraft, "POST", `${path(ctx, id)}/send`, { signal, read: "none" });
  return {
    transport: ctx.name,
    messageId: data.internetMessageId ?? "",
    accepted: [...(data.toRecipients ?? []), ...(data.ccRecipients ?? []), ...(data.bccRecipients ?? [])]
      .map((r) => r.emailAddress?.address ?? "")
      .filter(Boolean),
    rejected: [],
  };
}
