import { type DeviceCodeTokenProvider, deviceCodeTokenProvider } from "@m365-mail/auth-device-code";
import {
  fileTokenCache,
  type RopcTokenProvider,
  redisTokenCache,
  ropcTokenProvider,
  type TokenCache,
} from "@m365-mail/auth-ropc";
import { createMailbox, type Logger, type Mailbox, type Transport } from "@m365-mail/core";
import { graphTransport } from "@m365-mail/transport-graph";
import { imapTransport } from "@m365-mail/transport-imap";
import { smtpTransport } from "@m365-mail/transport-smtp";
import { Redis } from "ioredis";
import type { M365Settings, ServerConfig } from "./config.js";

export interface ServerMailbox {
  mailbox: Mailbox;
  /** The address the server works on: M365_MAILBOX, else the signed-in user. */
  address: string;
  auth: RopcTokenProvider | DeviceCodeTokenProvider;
  /** Closes the mailbox (transports, provider) and the token cache's Redis connection. */
  close(): Promise<void>;
}

/**
 * The one mailbox the server acts as: a ROPC token provider (tokens in memory, or in Redis shared by
 * every process) — or, with M365_AUTH=device-code, the device-code provider reading the sign-in
 * `m365-mail login --device-code` stored (file or Redis) — and the configured transports, registered
 * in the order Graph, SMTP, IMAP.
 */
export function createServerMailbox(config: ServerConfig, m365: M365Settings, logger: Logger): ServerMailbox {
  let redis: Redis | undefined;
  if (config.tokenCache === "redis") {
    redis = new Redis(config.redisUrl!, { maxRetriesPerRequest: 3 });
    redis.on("error", (error) => logger.warn("token cache Redis error", { error: String(error) }));
  }
  let cache: TokenCache | undefined;
  if (redis) cache = redisTokenCache({ client: redis });
  else if (config.tokenCache === "file") {
    cache = fileTokenCache({ path: config.tokenCacheFile!, key: config.tokenCacheKey! });
  }
  const common = {
    tenantId: m365.tenantId,
    clientId: m365.clientId,
    username: m365.username,
    cloud: m365.cloud,
    logger,
    ...(m365.ca ? { ca: m365.ca } : {}),
    ...(cache ? { cache } : {}),
  };
  // Headless: no code is shown; a lost sign-in is a health event and a 503 from /readyz.
  const auth =
    m365.auth === "device-code"
      ? deviceCodeTokenProvider(common)
      : ropcTokenProvider({
          ...common,
          password: m365.password,
          engine: m365.engine,
          federation: m365.federation,
        });
  const ca = m365.ca ? { ca: m365.ca } : {};
  // Every transport works on the same mailbox: Graph /users/{shared}, SMTP and IMAP `user=` it.
  const shared = m365.mailbox ? { mailbox: m365.mailbox } : {};
  const transports: Transport[] = [];
  if (config.transports.includes("graph")) {
    transports.push(
      graphTransport({
        auth,
        maxConcurrency: config.graphConcurrency,
        watchIntervalMs: config.watchIntervalMs,
        // The outbox decides about a resend after its grace period; the transport must not resend blindly.
        uncertainSends: "report",
        logger,
        ...shared,
        ...ca,
      }),
    );
  }
  if (config.transports.includes("smtp")) {
    transports.push(
      smtpTransport({
        auth,
        maxConnections: config.smtpConnections,
        maxMessagesPerMinute: config.smtpPerMinute,
        // The outbox is the retry layer: it checks Sent Items before resending after a dropped connection.
        retry: false,
        logger,
        ...shared,
        ...ca,
      }),
    );
  }
  if (config.transports.includes("imap")) transports.push(imapTransport({ auth, logger, ...shared, ...ca }));
  const mailbox = createMailbox({ auth, transports });
  return {
    mailbox,
    address: m365.mailbox ?? m365.username,
    auth,
    async close() {
      await mailbox
        .close()
        .catch((error) => logger.warn("closing the mailbox failed", { error: String(error) }));
      await redis?.quit().catch(() => undefined);
    },
  };
}
