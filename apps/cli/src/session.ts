import { type RopcTokenProvider, ropcTokenProvider } from "@m365-mail/auth-ropc";
import { createMailbox, type Logger, type Mailbox, safeLogger, type TransportInput } from "@m365-mail/core";
import { graphTransport } from "@m365-mail/transport-graph";
import { imapTransport } from "@m365-mail/transport-imap";
import { pop3Transport } from "@m365-mail/transport-pop3";
import { smtpTransport } from "@m365-mail/transport-smtp";
import type { Credentials, ResolvedConfig } from "./config.js";

export type Via = "graph" | "smtp" | "imap" | "pop3";

export interface SessionOptions {
  /** Which transports the command uses; only those are created. */
  transports: readonly Via[];
  /** `--verbose`: the packages' log lines (redacted) on stderr. */
  verbose?: boolean;
  /** Poll interval of Graph's watch. */
  graphWatchIntervalMs?: number;
}

/** The signed-in user and the transports a command needs, built the way any application would. */
export interface Session {
  readonly auth: RopcTokenProvider;
  readonly mailbox: Mailbox;
  close(): Promise<void>;
}

export function stderrLogger(): Logger {
  const write = (level: string) => (message: string, data?: Record<string, unknown>) =>
    process.stderr.write(`[${level}] ${message}${data ? ` ${JSON.stringify(data)}` : ""}\n`);
  return safeLogger({
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
  });
}

export function openSession(
  config: ResolvedConfig,
  credentials: Credentials,
  options: SessionOptions,
): Session {
  const logger = options.verbose ? stderrLogger() : undefined;
  const ca = config.ca;
  const auth = ropcTokenProvider({
    tenantId: credentials.tenantId,
    clientId: credentials.clientId,
    username: credentials.username,
    password: credentials.password,
    cloud: config.cloud,
    ...(config.engine ? { engine: config.engine } : {}),
    ...(ca ? { ca } : {}),
    ...(logger ? { logger } : {}),
  });
  const common = { ...(ca ? { ca } : {}), ...(logger ? { logger } : {}) };
  const factories: Record<Via, TransportInput> = {
    graph: () =>
      graphTransport({
        auth,
        ...common,
        ...(options.graphWatchIntervalMs ? { watchIntervalMs: options.graphWatchIntervalMs } : {}),
      }),
    smtp: () => smtpTransport({ auth, ...common }),
    imap: () => imapTransport({ auth, ...common }),
    pop3: () => pop3Transport({ auth, ...common }),
  };
  const mailbox = createMailbox({ auth, transports: options.transports.map((name) => factories[name]) });
  return { auth, mailbox, close: () => mailbox.close() };
}
