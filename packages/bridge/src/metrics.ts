/**
 * Sent by `m365-mail bridge spool retry|discard` to the metrics listener; required on every spool change
 * (a web page cannot send it without a CORS preflight).
 */
export const SPOOL_CHANGE_HEADER = "x-m365-mail-bridge";

/**
 * Counters and gauges in the Prometheus text format (`/metrics`). A few dozen series at most, so a Map
 * per metric is all it takes; no client library.
 */
export interface BridgeMetrics {
  inc(name: MetricName, labels?: Record<string, string>, by?: number): void;
  set(name: MetricName, labels: Record<string, string>, value: number): void;
  /** Drops every series of a gauge (before setting the current ones). */
  clear(name: MetricName): void;
  /** The value of one series (tests and `status`). */
  get(name: MetricName, labels?: Record<string, string>): number;
  render(): string;
}

const HELP = {
  m365_bridge_sessions_total: ["counter", "Client sessions that ended, by protocol and result."],
  m365_bridge_sessions_open: ["gauge", "Client sessions open now, by protocol."],
  m365_bridge_logins_total: ["counter", "Device logins, by protocol and result (ok, failed)."],
  m365_bridge_lockout_refusals_total: [
    "counter",
    "Logins the lockout guard refused without asking Entra, by reason.",
  ],
  m365_bridge_upstream_throttled_total: [
    "counter",
    "Times Microsoft 365 asked the bridge to back off a mailbox (IMAP, POP3), by protocol.",
  ],
  m365_bridge_logins_held_total: [
    "counter",
    "Device logins answered 'try later' without asking Microsoft 365, while it throttles the mailbox, by protocol.",
  ],
  m365_bridge_deliveries_total: [
    "counter",
    "Messages handed to Microsoft 365, by route (graph, smtp) and result.",
  ],
  m365_bridge_sign_in_problems: [
    "gauge",
    "Problems that need a person (1 = open), by account, area (sign-in, graph, smtp, imap, pop3) and code.",
  ],
  m365_bridge_sent_copies_left_out_total: [
    "counter",
    "Clients' IMAP uploads to Sent Items left out because Microsoft 365 filed its own copy (sentCopies: drop), by account.",
  ],
  m365_bridge_spool_pending: ["gauge", "Messages accepted in spool mode and not yet delivered."],
  m365_bridge_spool_messages: [
    "gauge",
    "Spooled messages by state: queued, sending, uncertain (an operator decides), failed (given up).",
  ],
  m365_bridge_spool_oldest_pending_timestamp_seconds: [
    "gauge",
    "When the oldest spooled message still queued or being sent was accepted (Unix time; 0 when none): alert on time() minus this.",
  ],
  m365_bridge_tls_certificate_expiry_timestamp_seconds: [
    "gauge",
    "When the certificate a TLS listener presents ends (Unix time), by listener and file: alert on this minus time().",
  ],
} as const;

export type MetricName = keyof typeof HELP;

const key = (labels: Record<string, string> = {}) =>
  Object.keys(labels)
    .sort()
    .map(
      (k) => `${k}="${String(labels[k]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");

export function createBridgeMetrics(): BridgeMetrics {
  const series = new Map<MetricName, Map<string, number>>();
  const of = (name: MetricName) => {
    let m = series.get(name);
    if (!m) {
      m = new Map();
      series.set(name, m);
    }
    return m;
  };
  return {
    inc(name, labels, by = 1) {
      const m = of(name);
      const k = key(labels);
      m.set(k, (m.get(k) ?? 0) + by);
    },
    set(name, labels, value) {
      of(name).set(key(labels), value);
    },
    clear(name) {
      series.delete(name);
    },
    get(name, labels) {
      return series.get(name)?.get(key(labels)) ?? 0;
    },
    render() {
      const lines: string[] = [];
      for (const [name, [type, help]] of Object.entries(HELP) as [MetricName, readonly [string, string]][]) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [labels, value] of series.get(name) ?? []) {
          lines.push(`${name}${labels ? `{${labels}}` : ""} ${value}`);
        }
      }
      return `${lines.join("\n")}\n`;
    },
  };
}
