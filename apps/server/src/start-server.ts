import type { Logger } from "@m365-mail/core";
import type { Outbox } from "@m365-mail/outbox";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import type { StoredApiKey } from "./api-keys.js";
import { buildApp } from "./app.js";
import type { M365Settings, ServerConfig } from "./config.js";
import { mailEventHub } from "./events/mail-events.js";
import { signInEventData } from "./events/sign-in-events.js";
import { redisWebhookStore, sqliteWebhookStore, webhookStorePath } from "./events/webhook-store.js";
import { type WebhookSender, webhookSender } from "./events/webhooks.js";
import { createServerMailbox, type ServerMailbox } from "./mailbox-setup.js";
import { createMetrics } from "./metrics.js";
import { createServerOutbox } from "./outbox-setup.js";
import { mailEventData } from "./routes/event-routes.js";
import type { StoredMessage } from "./send-request.js";

export interface RunningServer {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  app: FastifyInstance;
  outbox: Outbox<StoredMessage>;
  mailbox: ServerMailbox;
  /** Stops accepting, lets deliveries in flight finish (bounded), closes everything. */
  close(): Promise<void>;
}

export interface StartServerOptions {
  config: ServerConfig;
  m365: M365Settings;
  logger: Logger;
  /** Keys besides config.apiKeys (emulator mode's development key). */
  extraApiKeys?: StoredApiKey[];
}

/** Wires mailbox, outbox, events and the HTTP app from a config, and listens. */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { config, m365, logger } = options;
  const mailbox = createServerMailbox(config, m365, logger);
  const names = mailbox.mailbox.transports().map((t) => t.name);
  const reader = names.includes(config.readVia)
    ? config.readVia
    : names.find((n) => n === "graph" || n === "imap");
  const outbox = createServerOutbox(config, mailbox.mailbox, logger);

  const watcher = config.watchVia !== "off" && names.includes(config.watchVia) ? config.watchVia : undefined;
  const metrics = createMetrics(outbox);
  const hub = mailEventHub({
    mailbox: mailbox.mailbox,
    transport: watcher,
    intervalMs: config.watchIntervalMs,
    logger,
    onEvent: (event) => metrics.mailEvents.inc({ type: event.type }),
  });
  // Sign-in problems that need a person: one log line (and one webhook) per change of state.
  const stopHealthLog = mailbox.auth.onHealthChange((event) => {
    const data = { code: event.code, serverCode: event.serverCode, hint: event.hint };
    if (event.type === "problem") logger.error(`sign-in problem: ${event.message}`, data);
    else logger.info(`sign-in of ${event.username} works again (${event.code} cleared)`);
  });
  let webhooks: WebhookSender | undefined;
  let stopWebhookFeed = () => {};
  if (config.webhookUrls.length > 0 && config.webhookSecret) {
    const sender = webhookSender({
      urls: config.webhookUrls,
      secret: config.webhookSecret,
      logger,
      // Durable like the outbox: Redis shared by every process, or a file next to the outbox's.
      store:
        config.outbox === "redis" && config.redisUrl
          ? redisWebhookStore(
              new Redis(config.redisUrl, { maxRetriesPerRequest: 2 }).on("error", (error) =>
                logger.warn("webhook Redis error", { error: String(error) }),
              ),
            )
          : sqliteWebhookStore(webhookStorePath(config.outboxPath)),
      onOutcome: (outcome) => metrics.webhooks.inc({ outcome }),
    });
    webhooks = sender;
    const unsubscribe = hub.available
      ? hub.subscribe((event) => sender.send(`mail.${event.type}`, mailEventData(event)))
      : () => {};
    const onChange = (entry: { state: string }) => {
      if (entry.state === "sent" || entry.state === "failed" || entry.state === "uncertain")
        sender.send(`outbox.${entry.state}`, entry);
    };
    outbox.events.on("change", onChange);
    const stopHealthFeed = mailbox.auth.onHealthChange((event) =>
      sender.send(`sign-in.${event.type}`, signInEventData(event)),
    );
    stopWebhookFeed = () => {
      unsubscribe();
      stopHealthFeed();
      outbox.events.off("change", onChange);
    };
  }

  let rateLimitRedis: Redis | undefined;
  if (config.redisUrl && config.rateLimitPerMinute > 0) {
    rateLimitRedis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    rateLimitRedis.on("error", (error) => logger.warn("rate-limit Redis error", { error: String(error) }));
  }

  const app = await buildApp({
    mailbox: mailbox.mailbox,
    address: mailbox.address,
    outbox,
    hub,
    metrics,
    logger,
    apiKeys: [...config.apiKeys, ...(options.extraApiKeys ?? [])],
    reader: reader ?? "graph",
    transports: names,
    maxAttachmentBytes: config.maxAttachmentBytes,
    rateLimitPerMinute: config.rateLimitPerMinute,
    ...(rateLimitRedis ? { rateLimitRedis } : {}),
    corsOrigins: config.corsOrigins,
    metricsPublic: config.metricsPublic,
    readyCacheMs: config.readyCacheMs,
    sseMaxPerKey: config.sseMaxPerKey,
    sseMaxTotal: config.sseMaxTotal,
  });
  await outbox.start();
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info(`listening on ${address}`);

  let closing: Promise<void> | undefined;
  return {
    url: address,
    app,
    outbox,
    mailbox,
    close() {
      closing ??= (async () => {
        stopWebhookFeed();
        stopHealthLog();
        await hub.close();
        await app.close();
        await outbox.close();
        await webhooks?.close();
        await mailbox.close();
        await rateLimitRedis?.quit().catch(() => undefined);
      })();
      return closing;
    },
  };
}
