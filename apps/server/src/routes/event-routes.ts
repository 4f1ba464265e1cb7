import type { MailEvent } from "@m365-mail/core";
import type { Outbox, OutboxEntry } from "@m365-mail/outbox";
import type { FastifyInstance } from "fastify";
import type { MailEventHub } from "../events/mail-events.js";

function mailEventData(event: MailEvent) {
  if (event.type === "deleted") return { type: event.type, id: event.id };
  const m = event.message;
  return {
    type: event.type,
    message: {
      id: m.id,
      subject: m.subject,
      ...(m.from ? { from: m.from } : {}),
      ...(m.receivedAt ? { receivedAt: m.receivedAt.toISOString() } : {}),
      ...(m.internetMessageId ? { internetMessageId: m.internetMessageId } : {}),
    },
  };
}

/**
 * GET /v1/events: Server-Sent Events. `mail` events come from the watch (IMAP IDLE or Graph delta),
 * `outbox` events from this process's outbox
 * (of messages the stream's key sent, or all with an admin key). Authenticated like every /v1 route, so browsers read it
 * with fetch() (EventSource cannot send an Authorization header).
 */
export interface EventRoutesOptions {
  hub: MailEventHub;
  outbox: Outbox;
  /** Open streams one API key may hold (SSE_MAX_PER_KEY). */
  maxPerKey: number;
  /** Open streams of all keys together (SSE_MAX_CONNECTIONS). */
  maxTotal: number;
}

export async function eventRoutes(app: FastifyInstance, options: EventRoutesOptions) {
  // Each stream holds a socket and listeners for as long as the client wants: unbounded, one key
  // could exhaust the process's file descriptors.
  const perKey = new Map<string, number>();
  let total = 0;
  app.get(
    "/v1/events",
    {
      schema: {
        tags: ["events"],
        summary: "Server-Sent Events: `mail` (new mail) and `outbox` (status changes)",
        produces: ["text/event-stream"],
        response: { 429: { $ref: "Error#" } },
      },
    },
    (request, reply) => {
      const name = request.apiKeyName;
      const mine = perKey.get(name) ?? 0;
      if (mine >= options.maxPerKey || total >= options.maxTotal) {
        const forKey = mine >= options.maxPerKey;
        return reply
          .status(429)
          .header("retry-after", "5")
          .send({
            error: {
              code: "TOO_MANY_STREAMS",
              message: forKey
                ? `this API key already holds ${mine} event streams (the limit)`
                : `the server already holds ${total} event streams (the limit)`,
              hint: forKey
                ? "Close an event stream of this key (one per client is enough), or raise SSE_MAX_PER_KEY."
                : "Close event streams, or raise SSE_MAX_CONNECTIONS.",
            },
          });
      }
      perKey.set(name, mine + 1);
      total++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        total--;
        const left = (perKey.get(name) ?? 1) - 1;
        if (left > 0) perKey.set(name, left);
        else perKey.delete(name);
      };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      res.write(`retry: 3000\n: connected\n\n`);
      const send = (event: string, data: unknown) =>
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      const admin = request.apiKeyAdmin;
      const onOutbox = (entry: OutboxEntry) => {
        if (admin || entry.owner === name) send("outbox", entry);
      };
      options.outbox.events.on("change", onOutbox);
      const unsubscribe = options.hub.available
        ? options.hub.subscribe((e) => send("mail", mailEventData(e)))
        : () => {};
      // Proxies close idle connections: a comment line every 15 s keeps it open.
      const heartbeat = setInterval(() => res.write(": ping\n\n"), 15_000);
      const stop = () => {
        release();
        clearInterval(heartbeat);
        options.outbox.events.off("change", onOutbox);
        unsubscribe();
      };
      request.raw.on("close", stop);
      res.on("error", stop);
    },
  );
}

export { mailEventData };
