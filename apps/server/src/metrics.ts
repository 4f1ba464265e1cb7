import type { Outbox } from "@m365-mail/outbox";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Prometheus metrics of one server process (prom-client, own registry). */
export function createMetrics(outbox: Outbox) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: "m365_server_http_request_duration_seconds",
    help: "HTTP requests by route and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const accepted = new Counter({
    name: "m365_outbox_accepted_total",
    help: "Sends stored in the outbox (idempotent replays not counted)",
    registers: [registry],
  });
  const deliveries = new Counter({
    name: "m365_outbox_deliveries_total",
    help: "Delivery attempts by result (sent, retry, failed), transport and error code",
    labelNames: ["result", "transport", "code"] as const,
    registers: [registry],
  });
  const recovered = new Counter({
    name: "m365_outbox_recovered_total",
    help: "Uncertain attempts (crash, network fault) resolved: found in Sent Items, or sent again",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const mailEvents = new Counter({
    name: "m365_mail_events_total",
    help: "New-mail events received from the watch (IMAP IDLE or Graph delta)",
    labelNames: ["type"] as const,
    registers: [registry],
  });
  const webhooks = new Counter({
    name: "m365_webhook_deliveries_total",
    help: "Webhook POSTs by outcome (ok, retry, failed)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "m365_outbox_messages",
    help: "Messages in the outbox by state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const counts = await outbox.counts();
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  outbox.events.on("change", (entry: { state: string; attempts: number }) => {
    if (entry.state === "queued" && entry.attempts === 0) accepted.inc();
  });
  outbox.events.on("delivery", (d: { result: string; transport?: string; code?: string }) =>
    deliveries.inc({ result: d.result, transport: d.transport ?? "", code: d.code ?? "" }),
  );
  outbox.events.on("recovered", (r: { outcome: string }) => recovered.inc({ outcome: r.outcome }));
  return { registry, httpDuration, mailEvents, webhooks };
}

export type Metrics = ReturnType<typeof createMetrics>;
