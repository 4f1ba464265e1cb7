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
 * `outbox` events from this process's outbox. Authenticated like every /v1 route, so browsers read it
 * with fetch() (EventSource cannot send an Authorization header).
 */
export async function eventRoutes(app: FastifyInstance, options: { hub: MailEventHub; outbox: Outbox }) {
  app.get(
    "/v1/events",
    {
      schema: {
        tags: ["events"],
        summary: "Server-Sent Events: `mail` (new mail) and `outbox` (status changes)",
        produces: ["text/event-stream"],
      },
    },
    (request, reply) => {
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
      const onOutbox = (entry: OutboxEntry) => send("outbox", entry);
      options.outbox.events.on("change", onOutbox);
      const unsubscribe = options.hub.available
        ? options.hub.subscribe((e) => send("mail", mailEventData(e)))
        : () => {};
      // Proxies close idle connections: a comment line every 15 s keeps it open.
      const heartbeat = setInterval(() => res.write(": ping\n\n"), 15_000);
      const stop = () => {
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
