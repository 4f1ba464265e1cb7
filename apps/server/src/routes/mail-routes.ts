import { type Mailbox, type Message, type MessageSummary, notSupported } from "@m365-mail/core";
import type { FastifyInstance } from "fastify";
import { transportForMessageId } from "../message-owner.js";
import { cursorQuery, decodeCursor, encodeCursor, pageHeaders, setNextPage } from "../page-cursor.js";
import { attachmentDisposition } from "./content-disposition.js";

export interface MailRoutesOptions {
  mailbox: Mailbox;
  /** The transport that lists and reads mail ("graph" or "imap"). */
  reader: string;
}

export const summarySchema = {
  $id: "MessageSummary",
  type: "object",
  additionalProperties: true,
  properties: {
    id: { type: "string" },
    folder: { type: "string" },
    internetMessageId: { type: "string" },
    subject: { type: "string" },
    from: { type: "object", additionalProperties: true },
    to: { type: "array", items: { type: "object", additionalProperties: true } },
    receivedAt: { type: "string" },
    size: { type: "integer" },
    isRead: { type: "boolean" },
    isFlagged: { type: "boolean" },
    hasAttachments: { type: "boolean" },
  },
} as const;

function summaryOf(m: MessageSummary) {
  return {
    id: m.id,
    ...(m.folder ? { folder: m.folder } : {}),
    ...(m.internetMessageId ? { internetMessageId: m.internetMessageId } : {}),
    subject: m.subject,
    ...(m.from ? { from: m.from } : {}),
    to: m.to,
    cc: m.cc,
    ...(m.receivedAt ? { receivedAt: m.receivedAt.toISOString() } : {}),
    ...(m.size !== undefined ? { size: m.size } : {}),
    ...(m.isRead !== undefined ? { isRead: m.isRead } : {}),
    ...(m.isFlagged !== undefined ? { isFlagged: m.isFlagged } : {}),
    ...(m.hasAttachments !== undefined ? { hasAttachments: m.hasAttachments } : {}),
  };
}

/** Folders, message lists, one message, its attachments, the calendar — read through one transport. */
export async function mailRoutes(app: FastifyInstance, options: MailRoutesOptions) {
  const { mailbox } = options;
  const reader = () => mailbox.transport(options.reader);

  app.get(
    "/v1/folders",
    { schema: { tags: ["mail"], summary: "Mail folders with paths and counts" } },
    async () => reader().listFolders!(),
  );

  app.get<{
    Querystring: { folder: string; limit: number; unreadOnly: boolean; since?: string; cursor?: string };
  }>(
    "/v1/messages",
    {
      schema: {
        tags: ["mail"],
        summary: "Messages of a folder, newest first, a page at a time",
        description:
          'At most `limit` messages. When there are more, the answer carries a `Next-Cursor` header (and `Link: <…>; rel="next"`): pass it as `cursor` with the same other parameters for the next page. Pages are counted from the newest message: mail arriving between two pages shifts the next one (a message may show twice, never be skipped).',
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            folder: { type: "string", default: "inbox", maxLength: 500 },
            limit: { type: "integer", minimum: 1, maximum: 200, default: 25 },
            unreadOnly: { type: "boolean", default: false },
            since: { type: "string", format: "date-time" },
            cursor: cursorQuery,
          },
        },
        response: {
          200: { type: "array", items: { $ref: "MessageSummary#" }, headers: pageHeaders },
          400: { $ref: "Error#" },
        },
      },
    },
    async (request, reply) => {
      const { folder, limit, unreadOnly, since, cursor } = request.query;
      // Neither Graph nor IMAP listings resume from a message: the cursor is how many came before.
      const skip =
        decodeCursor(cursor, (v): v is { n: number } => Number.isInteger(v.n) && (v.n as number) > 0)?.n ?? 0;
      const out = [];
      let seen = 0;
      let more = false;
      for await (const m of reader().listMessages!({
        folder,
        limit: skip + limit + 1,
        unreadOnly,
        pageSize: Math.min(skip + limit + 1, 200),
        ...(since ? { since: new Date(since) } : {}),
      })) {
        if (seen++ < skip) continue;
        if (out.length === limit) {
          more = true;
          break;
        }
        out.push(summaryOf(m));
      }
      setNextPage(reply, request.url, more ? encodeCursor({ n: skip + limit }) : undefined);
      return out;
    },
  );

  // An id from an event may come from another transport than the reader (IMAP IDLE vs Graph listings).
  const getMessage = (id: string, folder: string | undefined): Promise<Message> =>
    mailbox.transport(transportForMessageId(id, (name) => mailbox.has(name), options.reader)).getMessage!(
      id,
      folder ? { folder } : {},
    );

  app.get<{ Params: { id: string }; Querystring: { folder?: string } }>(
    "/v1/messages/:id",
    {
      schema: {
        tags: ["mail"],
        summary: "One message: text, HTML, attachment list (download them separately)",
        params: { type: "object", properties: { id: { type: "string", maxLength: 2000 } } },
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { folder: { type: "string", maxLength: 500 } },
        },
      },
    },
    async (request) => {
      const m = await getMessage(request.params.id, request.query.folder);
      return {
        ...summaryOf(m),
        ...(m.text !== undefined ? { text: m.text } : {}),
        ...(m.html !== undefined ? { html: m.html } : {}),
        attachments: m.attachments.map((a, index) => ({
          index,
          filename: a.filename,
          contentType: a.contentType,
          size: a.size,
          ...(a.contentId ? { contentId: a.contentId } : {}),
          ...(a.inline !== undefined ? { inline: a.inline } : {}),
        })),
      };
    },
  );

  app.get<{ Params: { id: string; index: number }; Querystring: { folder?: string } }>(
    "/v1/messages/:id/attachments/:index",
    {
      schema: {
        tags: ["mail"],
        summary: "An attachment's bytes",
        params: {
          type: "object",
          properties: { id: { type: "string", maxLength: 2000 }, index: { type: "integer", minimum: 0 } },
        },
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { folder: { type: "string", maxLength: 500 } },
        },
      },
    },
    async (request, reply) => {
      const m = await getMessage(request.params.id, request.query.folder);
      const attachment = m.attachments[request.params.index];
      if (!attachment)
        return reply.status(404).send({ error: { code: "NOT_FOUND", message: "no such attachment" } });
      // Served as a download, never rendered in the page's origin.
      return reply
        .header("content-type", "application/octet-stream")
        .header("x-content-type", attachment.contentType)
        .header("content-disposition", attachmentDisposition(attachment.filename))
        .header("x-content-type-options", "nosniff")
        .send(Buffer.from(attachment.content));
    },
  );

  app.get<{ Querystring: { start?: string; end?: string } }>(
    "/v1/calendar",
    {
      schema: {
        tags: ["calendar"],
        summary: "Calendar events between start and end (default: the next 7 days); needs Graph",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            start: { type: "string", format: "date-time" },
            end: { type: "string", format: "date-time" },
          },
        },
      },
    },
    async (request) => {
      const start = request.query.start ? new Date(request.query.start) : new Date();
      const end = request.query.end
        ? new Date(request.query.end)
        : new Date(start.getTime() + 7 * 86_400_000);
      const calendar = mailbox.transports().find((t) => t.capabilities.calendar);
      if (!calendar?.listEvents) {
        throw notSupported("server", "the calendar (add graph to TRANSPORTS)");
      }
      const out = [];
      for await (const e of calendar.listEvents({ start, end })) {
        out.push({ ...e, start: e.start.toISOString(), end: e.end.toISOString() });
        if (out.length >= 500) break;
      }
      return out;
    },
  );
}
