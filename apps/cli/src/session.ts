import type { DeviceCodeTokenProvider } from "@m365-mail/auth-device-code";
import type { RopcTokenProvider } from "@m365-mail/auth-ropc";
import { createMailbox, type Logger, type Mailbox, safeLogger, type TransportInput } from "@m365-mail/core";
import type { Credentials, Identity, ResolvedConfig } from "./config.js";
import { openTokenCache } from "./token-cache.js";

export type Via = "graph" | "smtp" | "imap" | "pop3";

export interface SessionOptions {
  /** Which transports the command uses; only those are created. */
  transports: readonly Via[];
  /** `--verbose`: the packages' log lines (redacted) on stderr. */
  verbose?: boolean;
  /** Poll interval of Graph's watch. */
  graphWatchIntervalMs?: number;
}

/** Either provider: both report sign-in health and serve both resources. */
export type SessionAuth = RopcTokenProvider | DeviceCodeTokenProvider;

/** The signed-in user and the transports a command needs, built the way any application would. */
export interface Session {
  readonly auth: SessionAuth;
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
  auth: SessionAuth,
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

/**
 * With `--auth device-code` the sign-in stored by `m365-mail login --device-code` is used, headless
 * (no password, no code shown); otherwise the password grant with `credentials`.
 */
export async function openSession(
  config: ResolvedConfig,
  credentials: Credentials | Identity,
  options: SessionOptions,
): Promise<Session> {
  const logger = options.verbose ? stderrLogger() : undefined;
  const ca = config.ca;
  const common = { ...(ca ? { ca } : {}), ...(logger ? { logger } : {}) };
  // Loaded here, not at start-up: msal-node and undici are most of the CLI's start-up time, and
  // `--help`, `emulator`, `bridge status` never sign in.
  const auth: SessionAuth =
    config.auth === "device-code"
      ? (await import("@m365-mail/auth-device-code")).deviceCodeTokenProvider({
          tenantId: credentials.tenantId,
          clientId: credentials.clientId,
          username: credentials.username,
          cloud: config.cloud,
          cache: (await openTokenCache(config)).cache,
          ...common,
        })
      : (await import("@m365-mail/auth-ropc")).ropcTokenProvider({
          tenantId: credentials.tenantId,
          clientId: credentials.clientId,
          username: credentials.username,
          password: "password" in credentials ? credentials.password : "",
          cloud: config.cloud,
          ...(config.engine ? { engine: config.engine } : {}),
          ...(config.federation ? { federation: config.federation } : {}),
          ...common,
        });
  const transports = await Promise.all(
    options.transports.map((name) =>
      loadTransport(
        name,
        auth,
        { ...common, ...(config.mailbox ? { mailbox: config.mailbox } : {}) },
        options,
      ),
    ),
  );
  const mailbox = createMailbox({ auth, transports });
  return { auth, mailbox, address: config.mailbox ?? credentials.username, close: () => mailbox.close() };
}
