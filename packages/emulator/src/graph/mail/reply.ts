/**
 * Reply, reply-all and forward: `createReply`/`createReplyAll`/`createForward` (a draft, 201) and
 * `reply`/`replyAll`/`forward` (sent at once, 202). The draft threads with the original
 * (`In-Reply-To`, `References`), prefixes the subject ("RE:", "FW:") and quotes the original below
 * the comment under an Outlook-style header block; a forward keeps the original's attachments.
 */
import type { ParsedMail } from "mailparser";
import { badRequest, GraphError } from "../graph-error.js";
import type { RouteContext } from "../graph-service.js";
import type { GraphResponse } from "../graph-types.js";
import { composeMime, type GraphMessageInput, type GraphRecipient } from "../mime.js";
import { draftInputOf } from "./draft-input.js";
import { context, type MessageIds, render, requireMessage } from "./route.js";
import { sendDraft } from "./send.js";

export type ReplyAction = "reply" | "replyAll" | "forward";

interface ReplyBody {
  comment?: unknown;
  message?: GraphMessageInput;
  toRecipients?: GraphRecipient[];
}

/** `createReply`, `createReplyAll`, `createForward`: the draft, saved in Drafts. */
export function createResponse(action: ReplyAction) {
  return async (route: RouteContext, ids: MessageIds): Promise<GraphResponse> => {
    const record = await composeResponse(route, ids, action, false);
    return {
      status: 201,
      json: {
        "@odata.context": context(route, "messages/$entity"),
        ...(await render(route, record, undefined)),
      },
    };
  };
}

/** `reply`, `replyAll`, `forward`: the draft is built and sent in one call. */
export function sendResponse(action: ReplyAction) {
  return async (route: RouteContext, ids: MessageIds): Promise<GraphResponse> => {
    const record = await composeResponse(route, ids, action, true);
    return sendDraft(route, { messageId: record.id });
  };
}

async function composeResponse(route: RouteContext, ids: MessageIds, action: ReplyAction, sending: boolean) {
  const original = await requireMessage(route, ids);
  const text = route.req.body.toString("utf8").trim();
  let body: ReplyBody = {};
  if (text !== "") {
    try {
      body = JSON.parse(text) as ReplyBody;
    } catch {
      throw badRequest(
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
      );
    }
  }
  if (body.comment !== undefined && typeof body.comment !== "string") {
    throw badRequest("Cannot convert the literal to the expected type 'Edm.String'.");
  }
  const parsed = await original.parsed();
  const upn = route.mailbox.upn;
  const input = body.message ?? {};
  const forwardTo = [...(body.toRecipients ?? []), ...(input.toRecipients ?? [])];
  if (action === "forward" && sending && forwardTo.length === 0) {
    throw new GraphError(
      400,
      "ErrorInvalidRecipients",
      "At least one recipient is required, but none were found.",
    );
  }
  const computed = action === "forward" ? { to: [], cc: [] } : replyRecipients(parsed, upn, action);
  const originalInput = await draftInputOf(parsed);
  const comment = typeof body.comment === "string" ? body.comment : "";
  // `message` holds "writeable properties to update in the reply": a property given there replaces
  // the one Outlook computed — a `body` replaces the quoted original, `toRecipients` the sender.
  // https://learn.microsoft.com/en-us/graph/api/message-createreply#request-body
  const draft: GraphMessageInput = {
    subject: input.subject ?? prefixed(action, parsed.subject ?? ""),
    body: input.body ?? quote(parsed, comment),
    toRecipients: action === "forward" ? forwardTo : (input.toRecipients ?? computed.to),
    ccRecipients: input.ccRecipients ?? computed.cc,
    ...(input.bccRecipients ? { bccRecipients: input.bccRecipients } : {}),
    attachments: [
      ...(action === "forward" ? (originalInput.attachments ?? []) : []),
      ...(input.attachments ?? []),
    ],
  };
  const parentId = parsed.messageId;
  const references = [...referencesOf(parsed), ...(parentId ? [parentId] : [])];
  const raw = await composeMime(draft, {
    mailbox: { address: upn, name: route.mailbox.displayName },
    keepBcc: true,
    ...(action !== "forward" && parentId ? { inReplyTo: parentId } : {}),
    ...(references.length > 0 ? { references } : {}),
  });
  return route.service.view.append(upn, "drafts", raw, { isDraft: true, isRead: true });
}

function referencesOf(parsed: ParsedMail): string[] {
  const refs = parsed.references;
  return Array.isArray(refs) ? refs : refs ? [refs] : [];
}

/** Outlook prefixes "RE: " and "FW: " and does not stack them. */
function prefixed(action: ReplyAction, subject: string): string {
  if (action === "forward") return /^\s*fw(d)?:/i.test(subject) ? subject : `FW: ${subject}`;
  return /^\s*re:/i.test(subject) ? subject : `RE: ${subject}`;
}

function recipientList(value: ParsedMail["to"]): { name: string; address: string }[] {
  return (Array.isArray(value) ? value : value ? [value] : [])
    .flatMap((group) => group.value)
    .filter((entry) => entry.address)
    .map((entry) => ({ name: entry.name ?? "", address: entry.address! }));
}

/** Reply: Reply-To, else the sender; reply-all adds To and Cc. Never the mailbox itself. */
function replyRecipients(
  parsed: ParsedMail,
  upn: string,
  action: "reply" | "replyAll",
): { to: GraphRecipient[]; cc: GraphRecipient[] } {
  const me = upn.toLowerCase();
  const seen = new Set([me]);
  const keep = (list: { name: string; address: string }[]) =>
    list
      .filter((entry) => {
        const key = entry.address.toLowerCase();
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      })
      .map((entry) => ({ emailAddress: entry }));
  const replyTo = recipientList(parsed.replyTo);
  const sender = replyTo.length > 0 ? replyTo : recipientList(parsed.from);
  const fromSelf = sender.length > 0 && sender.every((entry) => entry.address.toLowerCase() === me);
  // A reply to your own message goes to its recipients (yourself too, when you were one), as in Outlook.
  const to = fromSelf
    ? recipientList(parsed.to).map((entry) => {
        seen.add(entry.address.toLowerCase());
        return { emailAddress: entry };
      })
    : keep(sender);
  if (action === "reply") return { to, cc: [] };
  return { to: [...to, ...keep(recipientList(parsed.to))], cc: keep(recipientList(parsed.cc)) };
}

/** The comment, then Outlook's header block ("From: … Sent: … To: … Subject: …"), then the original. */
function quote(parsed: ParsedMail, comment: string): { contentType: string; content: string } {
  const format = (value: ParsedMail["to"]) =>
    recipientList(value)
      .map((entry) => (entry.name ? `${entry.name} <${entry.address}>` : entry.address))
      .join("; ");
  const lines = [
    `From: ${format(parsed.from)}`,
    `Sent: ${(parsed.date ?? new Date()).toUTCString()}`,
    `To: ${format(parsed.to)}`,
    ...(recipientList(parsed.cc).length > 0 ? [`Cc: ${format(parsed.cc)}`] : []),
    `Subject: ${parsed.subject ?? ""}`,
  ];
  const html = typeof parsed.html === "string" ? parsed.html : undefined;
  if (html !== undefined) {
    const escapeHtml = (text: string) =>
      text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\n/g, "<br>");
    return {
      contentType: "html",
      content: `<div>${escapeHtml(comment)}</div><hr><div>${lines.map(escapeHtml).join("<br>")}</div><br>${html}`,
    };
  }
  return {
    contentType: "text",
    content: `${comment}\n\n________________________________\n${lines.join("\n")}\n\n${parsed.text ?? ""}`,
  };
}
