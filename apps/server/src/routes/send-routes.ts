import { OUTBOX_STATES, type Outbox, type OutboxState, type ResolveAction } from "@m365-mail/outbox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { cursorQuery, decodeCursor, encodeCursor, pageHeaders, setNextPage } from "../page-cursor.js";
import {
  prepareSend,
  type SendRequestBody,
  type StoredMessage,
  sendRequestSchema,
  toOutboxMessage,
} from "../send-request.js";

export const entrySchema = {
  $id: "OutboxEntry",
  type: "object",
  additionalProperties: true,
  properties: {
    id: { type: "string" },
    state: { type: "string", enum: OUTBOX_STATES },
    messageId: { type: "string" },
    via: { type: "string" },
    subject: { type: "string" },
    attempts: { type: "integer" },
    createdAt: { type: "string" },
    updatedAt: { type: "string" },
    nextAttemptAt: { type: "string" },
    sentAt: { type: "string" },
    transport: { type: "string" },
    error: { $ref: "Error#/properties/error" },
    owner: { type: "string", description: "The name of the API key that sent it" },
  },
} as const;

/** Whether the request's key may see this entry: its own, or any with an admin key. */
export function maySee(request: FastifyRequest, entry: { owner?: string }): boolean {
  return request.apiKeyAdmin || entry.owner === request.apiKeyName;
}

const NOT_FOUND = { error: { code: "NOT_FOUND", message: "no such outbox message" } };

export interface SendRoutesOptions {
  outbox: Outbox<StoredMessage>;
  maxAttachmentBytes: number;
  defaultFrom: string;
  transports: readonly string[];
}

/** POST /v1/messages (durable outbox, 202), GET /v1/outbox, GET /v1/outbox/:id, POST /v1/outbox/:id/resolve. */
export async function sendRoutes(app: FastifyInstance, options: SendRoutesOptions) {
  const { outbox } = options;
  // base64 is 4/3 of the bytes; 1 MiB more for text, HTML and headers.
  const bodyLimit = Math.ceil((options.maxAttachmentBytes * 4) / 3) + 1024 * 1024;

  app.post<{ Body: SendRequestBody; Headers: { "idempotency-key"?: string } }>(
    "/v1/messages",
    {
      bodyLimit,
      schema: {
        tags: ["send"],
        summary: "Send a message (stored in the outbox before the answer, delivered by workers)",
        description:
          "Answers 202 once the message is durably stored. Repeat a request with the same Idempotency-Key to get the same id without a second message.",
        headers: {
          type: "object",
          properties: {
            "idempotency-key": { type: "string", minLength: 1, maxLength: 255, pattern: "^[!-~]+$" },
          },
        },
        body: sendRequestSchema,
        response: { 202: { $ref: "OutboxEntry#" }, 400: { $ref: "Error#" }, 409: { $ref: "Error#" } },
      },
    },
    async (request, reply) => {
      const prepared = prepareSend(request.body, options);
      const key = request.headers["idempotency-key"];
      const { entry, replayed } = await outbox.accept({
        message: { ...toOutboxMessage(prepared), owner: request.apiKeyName },
        ...(key ? { idempotencyKey: `${request.apiKeyName}:${key}` } : {}),
      });
      if (replayed) reply.header("idempotent-replayed", "true");
      reply.header("location", `/v1/outbox/${entry.id}`);
      return reply.status(202).send(entry);
    },
  );

  app.get<{ Querystring: { limit: number; state?: OutboxState; cursor?: string } }>(
    "/v1/outbox",
    {
      schema: {
        tags: ["send"],
        summary: "Recent outbox messages, newest first, a page at a time",
        description:
          'At most `limit` entries. When there are more, the answer carries a `Next-Cursor` header (and `Link: <…>; rel="next"`): pass it as `cursor` with the same `state` for the next page.',
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            limit: { type: "integer", minimum: 1, maximum: 500, default: 50 },
            state: { type: "string", enum: OUTBOX_STATES },
            cursor: cursorQuery,
          },
        },
        response: {
          200: { type: "array", items: { $ref: "OutboxEntry#" }, headers: pageHeaders },
          400: { $ref: "Error#" },
        },
      },
    },
    // Another key's messages are not listed: their subjects and recipients' traces are not this key's.
    async (request, reply) => {
      const { limit, state, cursor } = request.query;
      const after = decodeCursor(
        cursor,
        (v): v is { id: string; p: number } =>
          typeof v.id === "string" && Number.isInteger(v.p) && (v.p as number) > 0,
      );
      const entries = await outbox.list({
        limit: limit + 1,
        ...(state ? { state } : {}),
        ...(request.apiKeyAdmin ? {} : { owner: request.apiKeyName }),
        ...(after ? { after: { id: after.id, position: after.p } } : {}),
      });
      const page = entries.slice(0, limit);
      const position = (after?.p ?? 0) + page.length;
      setNextPage(
        reply,
        request.url,
        entries.length > limit ? encodeCursor({ id: page.at(-1)!.id, p: position }) : undefined,
      );
      return page;
    },
  );

  app.post<{ Params: { id: string }; Body: { action: ResolveAction } }>(
    "/v1/outbox/:id/resolve",
    {
      schema: {
        tags: ["send"],
        summary: "Decide on an uncertain or queued message: send it (again, or now), or discard it",
        description:
          "For a message in state `uncertain` (it may have been delivered, and Sent Items could not tell): `retry` — you checked that it was not delivered — queues it and sends it again, without a Sent Items look-up; `discard` does not send it (state `failed`, code `DISCARDED`, payload deleted). For a message in state `queued` (waiting out its backoff): `retry` makes its next attempt now; `discard` drops it before it is sent. `sending`, `sent` and `failed` answer 409.",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } } },
        body: {
          type: "object",
          additionalProperties: false,
          required: ["action"],
          properties: { action: { type: "string", enum: ["retry", "discard"] } },
        },
        response: { 200: { $ref: "OutboxEntry#" }, 404: { $ref: "Error#" }, 409: { $ref: "Error#" } },
      },
    },
    async (request, reply) => {
      const entry = await outbox.get(request.params.id);
      // Another key's message answers as if it did not exist: ids are not a way to probe.
      if (!entry || !maySee(request, entry)) return reply.status(404).send(NOT_FOUND);
      return outbox.resolve(request.params.id, request.body.action);
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/outbox/:id",
    {
      schema: {
        tags: ["send"],
        summary: "Status of one accepted message",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } } },
        response: { 200: { $ref: "OutboxEntry#" }, 404: { $ref: "Error#" } },
      },
    },
    async (request, reply) => {
      const entry = await outbox.get(request.params.id);
      if (!entry || !maySee(request, entry)) return reply.status(404).send(NOT_FOUND);
      return entry;
    },
  );
}
