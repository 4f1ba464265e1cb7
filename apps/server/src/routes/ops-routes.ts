import type { Mailbox } from "@m365-mail/core";
import { isM365MailError } from "@m365-mail/core";
import type { Outbox } from "@m365-mail/outbox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { signInStateData } from "../events/sign-in-events.js";
import type { Metrics } from "../metrics.js";

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
  code?: string;
  hint?: string;
}

function failed(name: string, error: unknown): Check {
  if (isM365MailError(error)) {
    return {
      name,
      ok: false,
      code: error.code,
      detail: error.message,
      ...(error.hint ? { hint: error.hint } : {}),
    };
  }
  return { name, ok: false, detail: String((error as Error)?.message ?? error) };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

/**
 * /healthz (the process runs), /readyz (a token per resource and each transport's verify(), a real
 * round trip — cached for READYZ_CACHE_MS so probes do not hammer Microsoft; details only with a key), /metrics.
 */
export async function opsRoutes(
  app: FastifyInstance,
  options: {
    mailbox: Mailbox;
    outbox: Outbox;
    metrics: Metrics;
    metricsPublic: boolean;
    requireKey: (request: any, reply: any) => Promise<void>;
    /** Whether the request carries a valid API key (then /readyz shows codes, messages and hints). */
    hasKey: (request: FastifyRequest) => boolean;
    /** How long one round of live checks answers /readyz. @default 15000 */
    readyCacheMs?: number;
  },
) {
  const { mailbox, outbox } = options;
  const cacheMs = options.readyCacheMs ?? 15_000;
  // One round at a time, counted from its end: a slow round (up to the 20 s deadline) cannot overlap
  // the next, and a flood of probes from anyone costs Microsoft at most one round per cacheMs.
  let round: Promise<Check[]> | undefined;
  let roundDoneAt = 0;
  let running = false;
  let stale = false;
  // A change of sign-in state makes the next probe check again instead of answering from the cache,
  // except a change the round itself caused (its token request), which would otherwise start another.
  const stopWatching = mailbox.auth.onHealthChange?.(() => {
    if (!running) stale = true;
  });
  app.addHook("onClose", async () => stopWatching?.());

  const runChecks = async (): Promise<Check[]> => {
    const checks: Array<Promise<Check>> = [];
    const names = mailbox.transports().map((t) => t.name);
    const resources = new Set<"graph" | "outlook">();
    if (names.includes("graph")) resources.add("graph");
    if (names.some((n) => n !== "graph")) resources.add("outlook");
    for (const resource of resources) {
      checks.push(
        withTimeout(mailbox.auth.getAccessToken(resource), 20_000).then(
          () => ({ name: `token:${resource}`, ok: true }),
          (error) => failed(`token:${resource}`, error),
        ),
      );
    }
    for (const transport of mailbox.transports()) {
      checks.push(
        withTimeout(transport.verify(), 20_000).then(
          (report) => {
            const bad = report.checks.find((c) => !c.ok);
            return bad
              ? failed(`transport:${transport.name}`, bad.error ?? new Error(bad.detail))
              : { name: `transport:${transport.name}`, ok: true };
          },
          (error) => failed(`transport:${transport.name}`, error),
        ),
      );
    }
    checks.push(
      outbox.check().then(
        () => ({ name: `outbox:${outbox.kind}`, ok: true }),
        (e) => failed(`outbox:${outbox.kind}`, e),
      ),
    );
    return Promise.all(checks);
  };

  app.get("/healthz", { schema: { tags: ["ops"], summary: "Liveness: the process answers" } }, async () => ({
    status: "ok",
  }));

  app.get(
    "/readyz",
    { schema: { tags: ["ops"], summary: "Readiness: tokens, each transport's verify(), the outbox store" } },
    async (request, reply) => {
      if (!running && (!round || stale || Date.now() - roundDoneAt >= cacheMs)) {
        running = true;
        stale = false;
        round = runChecks().finally(() => {
          running = false;
          roundDoneAt = Date.now();
        });
      }
      const checks = [...(await round!)];
      // Read live (no request): a problem that needs a person shows at once, with its fix.
      const state = mailbox.auth.healthState?.();
      if (state) {
        checks.unshift(
          state.status === "problem"
            ? {
                name: "sign-in",
                ok: false,
                code: state.code,
                detail: state.message,
                ...(state.hint ? { hint: state.hint } : {}),
              }
            : { name: "sign-in", ok: true, ...(state.status === "ok" ? {} : { detail: "no sign-in yet" }) },
        );
      }
      const ready = checks.every((c) => c.ok);
      // Without a key: ok or not per component, nothing about the tenant, the user or the fix.
      if (!options.hasKey(request)) {
        return reply
          .status(ready ? 200 : 503)
          .send({ ready, checks: checks.map((c) => ({ name: c.name, ok: c.ok })) });
      }
      return reply
        .status(ready ? 200 : 503)
        .send({ ready, ...(state ? { signIn: signInStateData(state) } : {}), checks });
    },
  );

  app.get(
    "/metrics",
    {
      schema: { tags: ["ops"], summary: "Prometheus metrics", hide: false },
      ...(options.metricsPublic ? {} : { onRequest: options.requireKey }),
    },
    async (_request, reply) => {
      reply.header("content-type", options.metrics.registry.contentType);
      return options.metrics.registry.metrics();
    },
  );
}
