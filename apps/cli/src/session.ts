import { type RopcTokenProvider, ropcTokenProvider } from "@m365-mail/auth-ropc";
import { createMailbox, type Logger, type Mailbox, safeLogger, type TransportInput } from "@m365-mail/core";
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
  /** The address the commands work on: `--mailbox`, else the signed-in user. */
  readonly address: string;
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

/** Each transport's SDK (imapflow, nodemailer, the Graph client) is loaded only by the commands that use it. */
async function loadTransport(
  name: Via,
  auth: RopcTokenProvider,
  common: { ca?: string; logger?: Logger; mailbox?: string },
  options: SessionOptions,
): Promise<TransportInput> {
  switch (name) {
    case "graph": {
      const { graphTransport } = await import("@m365-mail/transport-graph");
      const interval = options.graphWatchIntervalMs ? { watchIntervalMs: options.graphWatchIntervalMs } : {};
      return () => graphTransport({ auth, ...common, ...interval });
    }
    case "smtp": {
      const { smtpTransport } = await import("@m365-mail/transport-smtp");
      return () => smtpTransport({ auth, ...common });
    }
    case "imap": {
      const { imapTransport } = await import("@m365-mail/transport-imap");
      return () => imapTransport({ auth, ...common });
    }
    case "pop3": {
      const { pop3Transport } = await import("@m365-mail/transport-pop3");
      return () => pop3Transport({ auth, ...common });
    }
  }
}

export async function openSession(
  config: ResolvedConfig,
  credentials: Credentials,
  options: SessionOptions,
): Promise<Session> {
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
  const common = {
    ...(ca ? { ca } : {}),
    ...(logger ? { logger } : {}),
    ...(config.mailbox ? { mailbox: config.mailbox } : {}),
  };
  const transports = await Promise.all(
    options.transports.map((name) => loadTransport(name, auth, common, options)),
  );
  const mailbox = createMailbox({ auth, transports });
  return { auth, mailbox, address: config.mailbox ?? credentials.username, close: () => mailbox.close() };
}
