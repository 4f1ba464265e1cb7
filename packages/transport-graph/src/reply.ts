import { parseAddressList, type ReplyInput, type SendResult, validateOutgoingMessage } from "@m365-mail/core";
import { addDraftAttachments } from "./drafts.js";
import type { GraphContext } from "./graph-context.js";
import { type GraphMessage, type GraphRecipient, toGraphRecipient } from "./graph-message.js";
import { OPERATIONS } from "./operations.js";

const ACTIONS = { reply: "createReply", replyAll: "createReplyAll", forward: "createForward" } as const;

/**
 * Reply, reply-all or forward the way Outlook does: `createReply…` makes a draft that quotes the
 * original and carries its threading headers, attachments are added to it, then it is sent. The
 * draft is deleted again when adding an attachment fails (nothing was sent).
 * https://learn.microsoft.com/en-us/graph/api/message-createreply
 */
export async function replyToMessage(
  ctx: GraphContext,
  messageId: string,
  input: ReplyInput,
  signal?: AbortSignal,
): Promise<SendResult> {
  // The same checks a send makes (addresses, attachment names), before anything is created.
  validateOutgoingMessage(
    { to: input.to, cc: input.cc, attachments: input.attachments, text: input.text },
    { requireRecipients: false },
  );
  const to = parseAddressList(input.to).map(toGraphRecipient);
  const cc = parseAddressList(input.cc).map(toGraphRecipient);
  const message: Record<string, unknown> = {};
  if (to.length > 0) message.toRecipients = to;
  if (cc.length > 0) message.ccRecipients = cc;
  const body: Record<string, unknown> = {};
  // Graph refuses `comment` together with `message.body`: HTML goes as the body, text as the comment.
  if (input.html !== undefined) message.body = { contentType: "HTML", content: input.html };
  else if (input.text !== undefined) body.comment = input.text;
  if (Object.keys(message).length > 0) body.message = message;
  const mb = ctx.mailboxPath;
  const { data: draft } = await ctx.http.request<GraphMessage>(
    OPERATIONS.createReply,
    "POST",
    `${mb}/messages/${encodeURIComponent(messageId)}/${ACTIONS[input.kind]}`,
    { body, signal },
  );
  const draftPath = `${mb}/messages/${encodeURIComponent(draft.id)}`;
  try {
    await addDraftAttachments(ctx, draftPath, input.attachments ?? [], signal);
  } catch (error) {
    await ctx.http
      .request(OPERATIONS.deleteDraft, "DELETE", draftPath, { read: "none" })
      .catch((e: unknown) => ctx.log.warn("could not delete the unsent reply draft", { error: e }));
    throw error;
  }
  await ctx.http.request(OPERATIONS.sendDraft, "POST", `${draftPath}/send`, { signal, read: "none" });
  return {
    transport: ctx.name,
    messageId: draft.internetMessageId ?? "",
    accepted: [...(draft.toRecipients ?? []), ...(draft.ccRecipients ?? [])]
      .map((r: GraphRecipient) => r.emailAddress?.address ?? "")
      .filter(Boolean),
    rejected: [],
  };
}
