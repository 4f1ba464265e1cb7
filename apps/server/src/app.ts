import cors from "@fastify/cors";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { Logger, Mailbox } from "@m365-mail/core";
import type { Outbox } from "@m365-mail/outbox";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { apiKeyVerifier, presentedKey, type StoredApiKey } from "./api-keys.js";
import type { MailEventHub } from "./events/mail-events.js";
import { errorBodySchema, errorHandler, schemaErrorFormatter } from "./http-errors.js";
import type { Metrics } from "./metrics.js";
import { pageRoutes } from "./page.js";
import { eventRoutes } from "./routes/event-routes.js";
import { mailRoutes, summarySchema } from "./routes/mail-routes.js";
import { messageOpsRoutes } from "./routes/message-ops-routes.js";
import { opsRoutes } from "./routes/ops-routes.js";
import { entrySchema, sendRoutes } from "./routes/send-routes.js";
import type { StoredMessage } from "./send-request.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The name of the API key the request authenticated with. */
    apiKeyName: string;
    /** Whether that key sees every key's outbox messages. */
    apiKeyAdmin: boolean;
  }
}

export interface BuildAppOptions {
  mailbox: Mailbox;
  /** The mailbox's address (a shared mailbox's, or the signed-in user's): the default From. */
  address?: string;
  outbox: Outbox<StoredMessage>;
  hub: MailEventHub;
  metrics: Metrics;
  logger: Logger;
  apiKeys: readonly StoredApiKey[];
  /** Transport that lists and reads mail. */
  reader: string;
  transports: readonly string[];
  maxAttachmentBytes: number;
  rateLimitPerMinute: number;
  /** Shares rate-limit counters between processes. */
  rateLimitRedis?: Redis;
  corsOrigins: readonly string[];
  metricsPublic: boolean;
  /** How long one round of /readyz checks is answered from. @default 15000 */
  readyCacheMs?: number;
  /** Open event streams per API key. @default 5 */
  sseMaxPerKey?: number;
  /** Open event streams in total. @default 200 */
  sseMaxTotal?: number;
}

/** The Fastify application: API, OpenAPI document and Swagger UI, the page, health and metrics. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { logger } = options;
  const app = Fastify({
    logger: false,
    // Only the send route takes large bodies (its own bodyLimit).
    bodyLimit: 1024 * 1024,
    schemaErrorFormatter: schemaErrorFormatter as never,
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  app.decorateRequest("apiKeyName", "");
  app.decorateRequest("apiKeyAdmin", false);
  // Unknown fields are refused (400), not silently dropped as with Fastify's default Ajv options; and
  // a JSON body is taken as sent (42 is not the string "42"), while query strings are coerced.
  const strict = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: true, strict: false });
  const coercing = new Ajv({
    removeAdditional: false,
    coerceTypes: "array",
    useDefaults: true,
    strict: false,
  });
  addFormats.default(strict);
  addFormats.default(coercing);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === "body" ? strict : coercing).compile(schema),
  );
  // Shared schemas are added here, at the root: an addSchema() inside a plugin makes Fastify 5 drop the
  // custom validator compiler for that plugin's routes (they would then accept unknown fields).
  for (const schema of [errorBodySchema, entrySchema, summarySchema]) app.addSchema(schema);
  app.setErrorHandler(errorHandler(logger));

  const verify = apiKeyVerifier(options.apiKeys);
  const admins = new Set(options.apiKeys.filter((k) => k.admin).map((k) => k.name));
  const requireKey = async (request: FastifyRequest, reply: FastifyReply) => {
    const name = verify(presentedKey(request.headers));
    if (!name) {
      // No detail: a caller learns nothing about which keys exist or why theirs failed.
      return reply
        .status(401)
        .header("www-authenticate", "Bearer")
        .send({ error: { code: "UNAUTHORIZED", message: "unauthorized" } });
    }
    request.apiKeyName = name;
    request.apiKeyAdmin = admins.has(name);
  };

  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions?.url ?? "unmatched";
    options.metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  if (options.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: [...options.corsOrigins],
      allowedHeaders: ["authorization", "content-type", "idempotency-key", "x-api-key"],
      // A listing's next page is in these headers: a browser reads them only when exposed.
      exposedHeaders: ["next-cursor", "link"],
    });
  }
  await app.register(rateLimit, {
    global: false,
    // While Redis is down the limits are not counted (not a 500 on every request): a send still gets the
    // outbox's own 503, and Microsoft's limits are kept by the transports.
    ...(options.rateLimitRedis
      ? { redis: options.rateLimitRedis, nameSpace: "m365-mail-server-rl:", skipOnError: true }
      : {}),
  });
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "m365-mail sample server",
        version: "0.1.0",
        description:
          "Send, read and watch the mail of one Microsoft 365 mailbox. Sends go through a durable outbox.",
      },
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer", description: "An API key of this server" },
        },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  await app.register(pageRoutes);
  await app.register(opsRoutes, {
    mailbox: options.mailbox,
    outbox: options.outbox,
    metrics: options.metrics,
    metricsPublic: options.metricsPublic,
    requireKey,
    hasKey: (request) => verify(presentedKey(request.headers)) !== undefined,
    ...(options.readyCacheMs !== undefined ? { readyCacheMs: options.readyCacheMs } : {}),
  });

  // Everything under /v1 needs a key and counts against that key's rate limit.
  await app.register(async (api) => {
    api.addHook("onRequest", requireKey);
    if (options.rateLimitPerMinute > 0) {
      api.addHook(
        "preHandler",
        api.rateLimit({
          max: options.rateLimitPerMinute,
          timeWindow: 60_000,
          keyGenerator: (request) => `key:${request.apiKeyName}`,
        }),
      );
    }
    await api.register(sendRoutes, {
      outbox: options.outbox,
      maxAttachmentBytes: options.maxAttachmentBytes,
      defaultFrom: options.address ?? options.mailbox.auth.username,
      transports: options.transports,
    });
    api.get(
      "/v1/me",
      { schema: { tags: ["mail"], summary: "The mailbox this server acts as, and its set-up" } },
      async () => ({
        username: options.mailbox.auth.username,
        mailbox: options.address ?? options.mailbox.auth.username,
        transports: options.transports,
        reader: options.reader,
        outbox: options.outbox.kind,
      }),
    );
    await api.register(mailRoutes, { mailbox: options.mailbox, reader: options.reader });
    await api.register(messageOpsRoutes, { mailbox: options.mailbox, reader: options.reader });
    await api.register(eventRoutes, {
      hub: options.hub,
      outbox: options.outbox,
      maxPerKey: options.sseMaxPerKey ?? 5,
      maxTotal: options.sseMaxTotal ?? 200,
    });
  });
  return app;
}
