import { Readable } from "node:stream";
import {
  composeReply,
  M365MailError,
  type Mailbox,
  type OutgoingMessage,
  type ReplyInput,
  type ReplyKind,
  type SendResult,
  type Transport,
} from "@m365-mail/core";
import type { FastifyInstance } from "fastify";
import { attachmentDisposition } from "./content-disposition.js";

export interface MessageOpsRoutesOptions {
  mailbox: Mailbox;
  /** The transport that reads and changes mail ("graph" or "imap"). */
  reader: string;
}

const id = { type: "string", minLength: 1, maxLength: 2000 } as const;
const address = { type: "string", minLength: 3, maxLength: 320 } as const;
const addresses = {
  oneOf: [address, { type: "array", items: address, maxItems: 500 }],
} as const;
const idParams = { type: "object", required: ["id"], properties: { id } } as const;

const sendResultSchema = {
  type: "object",
  properties: {
    transport: { type: "string" },
    messageId: { type: "string" },
    accepted: { type: "array", items: { type: "string" } },
    rejected: { type: "array", items: { type: "string" } },
  },
} as const;

const replyBody = (forward: boolean) =>
  ({
    type: "object",
    additionalProperties: false,
    ...(forward ? { required: ["to"] } : {}),
    properties: {
      text: { type: "string", maxLength: 1_000_000 },
      html: { type: "string", maxLength: 2_000_000 },
      to: addresses,
      cc: addresses,
    },
  }) as const;

const draftBody = {
  type: "object",
  additionalProperties: false,
  properties: {
    to: addresses,
    cc: addresses,
    bcc: addresses,
    subject: { type: "string", maxLength: 1000 },
    text: { type: "string", maxLength: 1_000_000 },
    html: { type: "string", maxLength: 2_000_000 },
  },
} as const;

interface ReplyRequest {
  text?: string;
  html?: string;
  to?: string | string[];
  cc?: string | string[];
}

type DraftRequest = Pick<OutgoingMessage, "subject" | "text" | "html"> & {
  to?: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
};

function need<M extends keyof Transport>(
  transport: Transport,
  method: M,
  what: string,
): NonNullable<Transport[M]> {
  const fn = transport[method];
  if (typeof fn !== "function") {
    throw new M365MailError("NOT_SUPPORTED", `${what} is not possible over ${transport.name}`, {
      source: "server",
      hint: "Set READ_VIA=graph (drafts need Graph; replies need Graph, or IMAP with smtp in TRANSPORTS).",
    });
  }
  return (fn as (...args: unknown[]) => unknown).bind(transport) as NonNullable<Transport[M]>;
}

/**
 * Everyday operations on the mailbox's messages: search, reply / reply-all / forward, read and flag
 * state, move, delete, attachments as streams, drafts. They act at once (unlike sends, they are not
 * queued in the outbox): a failure is the answer.
 */
export async function messageOpsRoutes(app: FastifyInstance, options: MessageOpsRoutesOptions) {
  const { mailbox } = options;
  const reader = () => mailbox.transport(options.reader);

  app.get<{
    Querystring: { q?: string; from?: string; to?: string; subject?: string; folder: string; limit: number };
  }>(
    "/v1/search",
    {
      schema: {
        tags: ["mail"],
        summary: "Find messages: words anywhere (q), sender, recipient, subject — all must match",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            q: { type: "string", maxLength: 500 },
            from: { type: "string", maxLength: 500 },
            to: { type: "string", maxLength: 500 },
            subject: { type: "string", maxLength: 500 },
            folder: { type: "string", default: "inbox", maxLength: 500 },
            limit: { type: "integer", minimum: 1, maximum: 200, default: 25 },
          },
        },
        response: { 200: { type: "array", items: { $ref: "MessageSummary#" } } },
      },
    },
    async (request) => {
      const { q, from, to, subject, folder, limit } = request.query;
      const search = {
        ...(q ? { text: q } : {}),
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
        ...(subject ? { subject } : {}),
      };
      if (Object.keys(search).length === 0) {
        throw new M365MailError("MESSAGE_INVALID", "nothing to search for", {
          source: "server",
          hint: "Give q, from, to or subject.",
        });
      }
      const out = [];
      for await (const m of reader().listMessages!({ folder, limit, pageSize: limit, search })) {
        out.push({ ...m, ...(m.receivedAt ? { receivedAt: m.receivedAt.toISOString() } : {}) });
        if (out.length >= limit) break;
      }
      return out;
    },
  );

  const respond = (kind: ReplyKind, path: string, summary: string) =>
    app.post<{ Params: { id: string }; Body: ReplyRequest }>(
      path,
      {
        schema: {
          tags: ["mail"],
          summary,
          params: idParams,
          body: replyBody(kind === "forward"),
          response: { 200: sendResultSchema },
        },
      },
      async (request): Promise<SendResult> => {
        const input: ReplyInput = { kind, ...request.body };
        const transport = reader();
        if (transport.reply) return transport.reply(request.params.id, input);
        // IMAP: the answer is composed here and sent over SMTP.
        const smtp = mailbox.transports().find((t) => t.name === "smtp");
        if (!smtp) need(transport, "reply", "replying");
        const original = await transport.getMessage!(request.params.id);
        return mailbox.send(composeReply(original, input, mailbox.auth.username), { via: "smtp" });
      },
    );
  respond("reply", "/v1/messages/:id/reply", "Reply to the sender, quoting the message (threaded)");
  respond("replyAll", "/v1/messages/:id/reply-all", "Reply to the sender and all other recipients");
  respond("forward", "/v1/messages/:id/forward", "Forward the message with its attachments");

  app.patch<{ Params: { id: string }; Body: { isRead?: boolean; isFlagged?: boolean } }>(
    "/v1/messages/:id",
    {
      schema: {
        tags: ["mail"],
        summary: "Mark read or unread, flag or unflag",
        params: idParams,
        body: {
          type: "object",
          additionalProperties: false,
          minProperties: 1,
          properties: { isRead: { type: "boolean" }, isFlagged: { type: "boolean" } },
        },
        response: { 204: { type: "null" } },
      },
    },
    async (request, reply) => {
      const transport = reader();
      const { isRead, isFlagged } = request.body;
      if (isRead !== undefined) await need(transport, "markRead", "marking read")(request.params.id, isRead);
      if (isFlagged !== undefined) await need(transport, "setFlag", "flagging")(request.params.id, isFlagged);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: { folder: string } }>(
    "/v1/messages/:id/move",
    {
      schema: {
        tags: ["mail"],
        summary: "Move to another folder; answers the message's new id",
        params: idParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["folder"],
          properties: { folder: { type: "string", minLength: 1, maxLength: 500 } },
        },
        response: { 200: { type: "object", properties: { id: { type: "string" } } } },
      },
    },
    async (request) => ({
      id: await need(reader(), "moveMessage", "moving")(request.params.id, request.body.folder),
    }),
  );

  app.delete<{ Params: { id: string }; Querystring: { permanent: boolean } }>(
    "/v1/messages/:id",
    {
      schema: {
        tags: ["mail"],
        summary:
          "Move to Deleted Items (answers the new id); a message already there, or any with permanent=true, is removed (204)",
        params: idParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { permanent: { type: "boolean", default: false } },
        },
      },
    },
    async (request, reply) => {
      const transport = reader();
      if (!request.query.permanent) {
        // Outlook's Delete key: to Deleted Items (the new id), or for good when it is there already.
        const id = await need(transport, "trashMessage", "deleting")(request.params.id);
        return id === undefined ? reply.status(204).send() : { id };
      }
      const remove = need(transport, "deleteMessage", "deleting");
      await remove(request.params.id, { permanent: true } as { signal?: AbortSignal });
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/messages/:id/attachments",
    {
      schema: {
        tags: ["mail"],
        summary: "The message's attachments with their ids (download each with …/attachments/{id}/content)",
        params: idParams,
      },
    },
    async (request) => need(reader(), "listAttachments", "listing attachments")(request.params.id),
  );

  app.get<{ Params: { id: string; attachmentId: string } }>(
    "/v1/messages/:id/attachments/:attachmentId/content",
    {
      schema: {
        tags: ["mail"],
        summary: "An attachment's bytes, streamed from Microsoft 365 as they arrive",
        params: {
          type: "object",
          required: ["id", "attachmentId"],
          properties: { id, attachmentId: { type: "string", minLength: 1, maxLength: 2000 } },
        },
      },
    },
    async (request, reply) => {
      const download = await need(
        reader(),
        "downloadAttachment",
        "downloading attachments",
      )(request.params.id, request.params.attachmentId);
      return reply
        .header("content-type", "application/octet-stream")
        .header("x-content-type", download.contentType)
        .header("content-disposition", attachmentDisposition(download.filename))
        .header("x-content-type-options", "nosniff")
        .send(Readable.from(download.content));
    },
  );

  app.post<{ Body: DraftRequest }>(
    "/v1/drafts",
    {
      schema: {
        tags: ["drafts"],
        summary: "Save a message in Drafts (recipients optional); answers its id",
        body: draftBody,
        response: {
          201: { type: "object", properties: { id: { type: "string" }, messageId: { type: "string" } } },
        },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await need(reader(), "createDraft", "drafts")(request.body as OutgoingMessage)),
  );

  app.patch<{ Params: { id: string }; Body: DraftRequest }>(
    "/v1/drafts/:id",
    {
      schema: {
        tags: ["drafts"],
        summary: "Change a draft: only the fields given",
        params: idParams,
        body: { ...draftBody, minProperties: 1 },
        response: {
          200: { type: "object", properties: { id: { type: "string" }, messageId: { type: "string" } } },
        },
      },
    },
    async (request) =>
      need(reader(), "updateDraft", "drafts")(request.params.id, request.body as OutgoingMessage),
  );

  app.post<{ Params: { id: string } }>(
    "/v1/drafts/:id/send",
    {
      schema: {
        tags: ["drafts"],
        summary: "Send a draft (it moves to Sent Items)",
        params: idParams,
        response: { 200: sendResultSchema },
      },
    },
    async (request) => need(reader(), "sendDraft", "drafts")(request.params.id),
  );
}
