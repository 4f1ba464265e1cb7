import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Logger, M365MailError, safeLogger } from "@m365-mail/core";
import type { BridgeConfig, ListenerConfig } from "./config-schema.js";
import { consoleLogger } from "./console-logger.js";
import { type Credentials, createCredentials } from "./credentials.js";
import type { Authenticate, BridgeProtocol, FrontDoor, FrontDoorOptions } from "./front-door.js";
import { startImapFrontDoor } from "./imap/imap-front-door.js";
import { createLockoutGuard, type LockoutGuard } from "./lockout-guard.js";
import { type BridgeMetrics, createBridgeMetrics } from "./metrics.js";
import { isLoopbackAddress, networkMatcher } from "./network.js";
import { startPop3FrontDoor } from "./pop3/pop3-front-door.js";
import { createSignInProblems, type SignInProblem, type SignInProblems } from "./sign-in-problems.js";
import { createDelivery, type Delivery } from "./smtp/deliver.js";
import { type ArrivingMessage, startSmtpFrontDoor } from "./smtp/smtp-front-door.js";
import { type Spool, type SpoolCounts, startSpool } from "./smtp/spool.js";
import { loadTlsMaterial } from "./tls-material.js";
import { openTokenCache, readCa } from "./token-cache.js";

export interface StartBridgeOptions {
  /** Receives the bridge's log lines, already redacted. @default one line per event on stderr, at config.logLevel */
  logger?: Logger;
  /** Environment for `passwordEnv` and `M365_CACHE_KEY`. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** The config file's path, for hints that give a command to run (`m365-mail bridge login --config …`). */
  configPath?: string;
  /**
   * Starts the IMAP and POP3 relays. The bridge passes the same options an SMTP listener gets (with
   * `upstream` set); the relays live in `./imap` and `./pop3`.
   */
  relays?: Partial<
    Record<Exclude<BridgeProtocol, "smtp">, (options: FrontDoorOptions) => Promise<FrontDoor>>
  >;
}

export interface BridgeListenerStatus {
  readonly protocol: BridgeProtocol;
  readonly host: string;
  readonly port: number;
  readonly security: string;
  readonly openSessions: number;
}

export interface BridgeStatus {
  readonly startedAt: string;
  readonly listeners: readonly BridgeListenerStatus[];
  readonly accounts: readonly { name: string; mode: string; delivery: string; answer: string }[];
  readonly signInProblems: readonly SignInProblem[];
  readonly lockout: { blockedClients: number; cappedAccounts: number };
  /** With a spool: its messages by state (`failed` and `uncertain` need a look). */
  readonly spool?: SpoolCounts;
  readonly metrics?: { host: string; port: number };
}

export interface Bridge {
  /** Where each listener (and the metrics endpoint) listens; port 0 in the config becomes the real port. */
  readonly addresses: readonly { protocol: BridgeProtocol | "metrics"; host: string; port: number }[];
  /** New accounts, auth and limits without dropping open sessions; a listener whose settings changed is restarted. */
  reload(config: BridgeConfig): Promise<void>;
  /** Stops accepting; open sessions get up to `drainMs` to finish. */
  close(options?: { drainMs?: number }): Promise<void>;
  status(): BridgeStatus;
  /** Prometheus text, as `/metrics` serves it. */
  metrics(): string;
}

interface RunningListener {
  readonly key: string;
  readonly config: ListenerConfig;
  readonly door: FrontDoor;
}

/** The bridge: listeners for SMTP (and IMAP/POP3 relays) in front of Microsoft 365, with one config. */
export async function startBridge(initial: BridgeConfig, options: StartBridgeOptions = {}): Promise<Bridge> {
  let config = initial;
  const env = options.env ?? process.env;
  const log = safeLogger(options.logger ?? consoleLogger(config.logLevel), "bridge");
  const startedAt = new Date().toISOString();
  const metrics = createBridgeMetrics();
  const problems = createSignInProblems({
    logger: log,
    metrics,
    ...(config.webhookUrl ? { webhookUrl: config.webhookUrl } : {}),
  });
  const guard = createLockoutGuard({
    settings: config.lockout,
    logger: log,
    onRefusal: (reason) => metrics.inc("m365_bridge_lockout_refusals_total", { reason }),
  });
  const ca = await readCa(config);
  const { cache, pepper, closeCache } = await openTokenCache(config, env);
  const credentials: Credentials = createCredentials({
    config,
    cache,
    ...(pepper ? { cachePepper: pepper } : {}),
    ...(ca ? { ca } : {}),
    guard,
    problems,
    metrics,
    logger: log,
    env,
    ...(options.configPath ? { configPath: options.configPath } : {}),
  });
  const delivery: Delivery = createDelivery({
    m365: () => config.m365,
    ...(ca ? { ca } : {}),
    logger: log,
    metrics,
    onProblem: (account, error) => problems.report(account, error),
  });
  let spool: Spool | undefined;
  if (config.spool) {
    try {
      spool = await startSpool({
        spool: config.spool,
        m365: () => config.m365,
        ...(ca ? { ca } : {}),
        credentials: () => credentials,
        delivery,
        metrics,
        logger: log,
      });
    } catch (error) {
      await credentials.dispose();
      await closeCache();
      throw error;
    }
  }
  const accept = async (message: ArrivingMessage): Promise<{ messageId: string; upstream: string }> => {
    if (message.account.answer === "spool") {
      if (!spool) {
        throw new M365MailError(
          "CONFIG_INVALID",
          `account ${message.account.name} answers "spool" but no spool is configured`,
          {
            source: "bridge",
            hint: 'Add "spool": { "type": "sqlite", "path": "/var/lib/m365-bridge/spool.db" } and restart the bridge.',
          },
        );
      }
      return { messageId: await spool.accept({ ...message, raw: await message.raw }), upstream: "spool" };
    }
    const result = await delivery.deliver(message);
    return { messageId: result.messageId, upstream: result.route };
  };
  // Front doors keep this function for their lifetime; it always asks the current credentials.
  const authenticate: Authenticate = (username, password, client) =>
    credentials.authenticate(username, password, client);

  const open = new Map<BridgeProtocol, number>();
  const onSession: FrontDoorOptions["onSession"] = (record) => {
    metrics.inc("m365_bridge_sessions_total", { protocol: record.protocol, result: record.result });
    const line = `session ${record.protocol} client=${record.client} account=${record.account ?? "-"} upstream=${record.upstream ?? "-"} in=${record.bytesIn} out=${record.bytesOut} ms=${record.durationMs} result=${record.result}${record.errorCode ? ` error=${record.errorCode}` : ""}`;
    if (record.result === "ok") log.info(line);
    else log.warn(line);
  };

  const listenerKey = (l: ListenerConfig) => JSON.stringify(l);

  async function startListener(l: ListenerConfig): Promise<RunningListener> {
    const tls =
      l.security === "plain"
        ? undefined
        : await loadTlsMaterial({
            ...(l.tls?.certFile ? { certFile: l.tls.certFile } : {}),
            ...(l.tls?.keyFile ? { keyFile: l.tls.keyFile } : {}),
            dataDir: config.dataDir,
            hosts: [l.host],
            logger: log,
          });
    const allowed = l.allowedNetworks ? networkMatcher(l.allowedNetworks) : undefined;
    // A "plain" listener on a public address without an allowlist is refused by validation; a plain one
    // on loopback takes loopback clients only.
    const isClientAllowed = allowed ?? (l.security === "plain" ? isLoopbackAddress : undefined);
    const base: FrontDoorOptions = {
      host: l.host,
      port: l.port,
      security: l.security,
      ...(tls ? { tls: { key: tls.key, cert: tls.cert } } : {}),
      authenticate,
      ...(isClientAllowed ? { isClientAllowed } : {}),
      limits: l.limits,
      logger: log,
      onSession,
    };
    let door: FrontDoor;
    if (l.protocol === "smtp") {
      const noAuth = l.noAuth;
      const noAuthMatch = noAuth ? networkMatcher(noAuth.networks) : undefined;
      door = await startSmtpFrontDoor({
        ...base,
        limits: l.limits,
        accountSettings: (name) => credentials.account(name),
        accept,
        ...(noAuth && noAuthMatch
          ? {
              noAuth: {
                isAllowed: noAuthMatch,
                from: noAuth.from,
                signIn: () => credentials.signInWithoutPassword(noAuth.account, "smtp", { device: true }),
              },
            }
          : {}),
      });
    } else {
      const start =
        options.relays?.[l.protocol] ?? (l.protocol === "imap" ? startImapFrontDoor : startPop3FrontDoor);
      const endpoint = config.m365[l.protocol];
      door = await start({
        ...base,
        upstream: {
          host: endpoint.host,
          port: endpoint.port,
          security: "tls",
          ...(ca ? { ca } : {}),
        },
      });
    }
    log.info(`listening: ${l.protocol} ${l.security} on ${door.address.host}:${door.address.port}`);
    return { key: listenerKey(l), config: l, door };
  }

  let listeners: RunningListener[] = [];
  let metricsServer: Server | undefined;
  let metricsAddress: { host: string; port: number } | undefined;
  try {
    for (const l of config.listeners) listeners.push(await startListener(l));
    if (config.metrics) {
      // Asked from outside: see first whether a missing device-code sign-in was stored meanwhile
      // (`bridge login`); accounts without that problem cost no cache read per scrape.
      const started = await startMetricsServer(config.metrics, metrics, async () => {
        await credentials.checkStoredSignIns({ missingOnly: true });
        return status();
      });
      metricsServer = started.server;
      metricsAddress = started.address;
    }
  } catch (error) {
    await Promise.all(listeners.map((l) => l.door.close({ drainMs: 0 })));
    await spool?.close();
    await credentials.dispose();
    await closeCache();
    throw error;
  }

  function status(): BridgeStatus {
    for (const l of listeners) open.set(l.config.protocol, 0);
    for (const l of listeners) {
      const n = (open.get(l.config.protocol) ?? 0) + l.door.openSessions;
      open.set(l.config.protocol, n);
    }
    for (const [protocol, n] of open) metrics.set("m365_bridge_sessions_open", { protocol }, n);
    return {
      startedAt,
      listeners: listeners.map((l) => ({
        protocol: l.config.protocol,
        host: l.door.address.host,
        port: l.door.address.port,
        security: l.config.security,
        openSessions: l.door.openSessions,
      })),
      accounts: config.accounts.map((a) => ({
        name: a.name,
        mode:
          a.credentials.mode === "mapped" && a.credentials.signIn
            ? `mapped, ${a.credentials.signIn}`
            : a.credentials.mode,
        delivery: a.delivery,
        answer: a.answer,
      })),
      signInProblems: problems.list(),
      lockout: guard.snapshot(),
      ...(spool ? { spool: spool.counts() } : {}),
      ...(metricsAddress ? { metrics: metricsAddress } : {}),
    };
  }

  const bridge: Bridge = {
    get addresses() {
      return [
        ...listeners.map((l) => ({ protocol: l.config.protocol, ...l.door.address })),
        ...(metricsAddress ? [{ protocol: "metrics" as const, ...metricsAddress }] : []),
      ];
    },
    async reload(next) {
      if (JSON.stringify(next.spool) !== JSON.stringify(config.spool)) {
        log.warn("reload: spool settings changed; they apply after a restart");
      }
      if (JSON.stringify(next.tokenCache) !== JSON.stringify(config.tokenCache)) {
        log.warn("reload: tokenCache settings changed; they apply after a restart");
      }
      config = next;
      credentials.reload(next);
      guard.update(next.lockout);
      problems.setWebhook(next.webhookUrl);
      await credentials.checkStoredSignIns();
      const wanted = new Map(next.listeners.map((l) => [listenerKey(l), l]));
      const kept: RunningListener[] = [];
      const stale: RunningListener[] = [];
      for (const l of listeners) (wanted.has(l.key) ? kept : stale).push(l);
      for (const l of kept) wanted.delete(l.key);
      // Old listeners stop accepting first (their port may be reused) while their sessions finish.
      await Promise.all(
        stale.map((l) => {
          log.info(
            `reload: restarting the ${l.config.protocol} listener on ${l.door.address.host}:${l.door.address.port}`,
          );
          return l.door.close({ drainMs: 30_000 });
        }),
      );
      const started: RunningListener[] = [];
      for (const l of wanted.values()) started.push(await startListener(l));
      listeners = [...kept, ...started];
      log.info(`reload: ${next.accounts.length} account(s), ${listeners.length} listener(s)`);
    },
    async close({ drainMs = 30_000 } = {}) {
      const doors = listeners;
      listeners = [];
      await Promise.all(doors.map((l) => l.door.close({ drainMs })));
      if (metricsServer) {
        metricsServer.closeAllConnections();
        await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
      }
      // Deliveries in flight finish (or are recorded as uncertain) before the transports close.
      await spool?.close();
      await delivery.close();
      await credentials.dispose();
      await closeCache();
      log.info("stopped");
    },
    status,
    metrics: () => {
      status();
      return metrics.render();
    },
  };
  await credentials.checkStoredSignIns();
  return bridge;
}

async function startMetricsServer(
  where: { host: string; port: number },
  metrics: BridgeMetrics,
  status: () => Promise<BridgeStatus>,
): Promise<{ server: Server; address: { host: string; port: number } }> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      await status();
      res
        .writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
        .end(metrics.render());
      return;
    }
    if (req.method === "GET" && path === "/status") {
      const body = JSON.stringify(await status());
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("GET /metrics or /status\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new M365MailError(
          "CONFIG_INVALID",
          `the metrics listener cannot listen on ${where.host}:${where.port}`,
          {
            source: "bridge",
            cause: error,
            hint: "Pick a free port in metrics.port.",
          },
        ),
      ),
    );
    server.listen(where.port, where.host, () => resolve());
  });
  return { server, address: { host: where.host, port: (server.address() as AddressInfo).port } };
}

export type { Credentials, LockoutGuard, SignInProblems };
