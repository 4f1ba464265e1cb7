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
  // Only `comment` goes with createReply… : a `message.body` or `message.toRecipients` there may
  // replace the quoted original or the computed recipients instead of adding to them. HTML and extra
  // recipients are patched onto the draft Graph built, so the quote and the original's sender stay.
  const mb = ctx.mailboxPath;
  const { data: draft } = await ctx.http.request<GraphMessage>(
    OPERATIONS.createReply,
    "POST",
    `${mb}/messages/${encodeURIComponent(messageId)}/${ACTIONS[input.kind]}`,
    { body: input.html === undefined && input.text !== undefined ? { comment: input.text } : {}, signal },
  );
  const draftPath = `${mb}/messages/${encodeURIComponent(draft.id)}`;
  try {
    const patch: Record<string, unknown> = {};
    if (input.html !== undefined)
      patch.body = { contentType: "HTML", content: aboveQuote(input.html, draft.body) };
    if (to.length > 0) patch.toRecipients = draft.toRecipients = union(draft.toRecipients, to);
    if (cc.length > 0) patch.ccRecipients = draft.ccRecipients = union(draft.ccRecipients, cc);
    if (Object.keys(patch).length > 0) {
      await ctx.http.request(OPERATIONS.updateDraft, "PATCH", draftPath, {
        body: patch,
        signal,
        read: "none",
      });
    }
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

/** The recipients Graph computed, then the ones asked for that are not among them. */
function union(computed: GraphRecipient[] | undefined, added: GraphRecipient[]): GraphRecipient[] {
  const result = [...(computed ?? [])];
  const seen = new Set(result.map((r) => r.emailAddress?.address?.toLowerCase()));
  for (const r of added) if (!seen.has(r.emailAddress?.address?.toLowerCase())) result.push(r);
  return result;
}

/** Your HTML on top of the draft's body (the quoted original), as Outlook places a reply. */
function aboveQuote(html: string, body: GraphMessage["body"]): string {
  const content = body?.content ?? "";
  if (content === "") return html;
  if (body?.contentType?.toLowerCase() !== "html") return `${html}<hr><pre>${escapeHtml(content)}</pre>`;
  const open = /<body[^>]*>/i.exec(content);
  if (!open) return html + content;
  const at = open.index + open[0].length;
  return content.slice(0, at) + html + content.slice(at);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}
