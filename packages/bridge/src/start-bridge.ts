import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isM365MailError, type Logger, M365MailError, safeLogger, serialQueue } from "@m365-mail/core";
import { OUTBOX_STATES, type OutboxState } from "@m365-mail/outbox";
import { CERTIFICATE_CHECK_MS, createListenerCertificates } from "./certificates.js";
import type { BridgeConfig, ListenerConfig } from "./config-schema.js";
import { consoleLogger } from "./console-logger.js";
import { type Credentials, createCredentials } from "./credentials.js";
import type { Authenticate, BridgeProtocol, FrontDoor, FrontDoorOptions } from "./front-door.js";
import { startImapFrontDoor } from "./imap/imap-front-door.js";
import { type BindListener, createListenerSet, sameListenerSettings } from "./listener-set.js";
import { createLockoutGuard, type LockoutGuard } from "./lockout-guard.js";
import { type BridgeMetrics, createBridgeMetrics, SPOOL_CHANGE_HEADER } from "./metrics.js";
import { isLoopbackAddress, networkMatcher } from "./network.js";
import { startPop3FrontDoor } from "./pop3/pop3-front-door.js";
import { shareThrottling } from "./relay/shared-throttling.js";
import { createUpstreamThrottling, type ThrottledMailbox } from "./relay/upstream-throttling.js";
import { redisSentCopies, SentCopies } from "./sent-copies.js";
import { createSignInProblems, type SignInProblem, type SignInProblems } from "./sign-in-problems.js";
import { createDelivery, type Delivery } from "./smtp/deliver.js";
import { type ArrivingMessage, startSmtpFrontDoor } from "./smtp/smtp-front-door.js";
import { type Spool, type SpoolCounts, startSpool } from "./smtp/spool.js";
import { openTokenCache, readCa } from "./token-cache.js";
import { createWebhook } from "./webhook.js";

export interface StartBridgeOptions {
  /** Receives the bridge's log lines, already redacted. @default one line per event on stderr, at config.logLevel */
  logger?: Logger;
  /** Environment for `passwordEnv` and `M365_CACHE_KEY`. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** The config file's path, for hints that give a command to run (`m365-mail bridge login --config …`). */
  configPath?: string;
  /**
   * How often the TLS listeners' certificate files are read again (a renewal on disk is presented without
   * a reload; a generated certificate is made anew 7 days before its end). @default 12 hours
   */
  certificateCheckMs?: number;
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
  /** TLS listeners: the certificate presented to new connections. */
  readonly certificate?: { readonly file: string; readonly expiresAt: string };
}

export interface BridgeStatus {
  readonly startedAt: string;
  readonly listeners: readonly BridgeListenerStatus[];
  readonly accounts: readonly {
    name: string;
    mode: string;
    delivery: string;
    answer: string;
    /** Absent from a bridge older than the CLI asking. */
    sentCopies?: string;
  }[];
  readonly signInProblems: readonly SignInProblem[];
  readonly lockout: { blockedClients: number; cappedAccounts: number };
  /** Mailboxes Microsoft 365 throttles now: their new IMAP/POP3 logins wait until `until`. */
  readonly throttled: readonly ThrottledMailbox[];
  /** With a spool: its messages by state (`failed` and `uncertain` need a look). */
  readonly spool?: SpoolCounts;
  readonly metrics?: { host: string; port: number };
}

export interface Bridge {
  /** Where each listener (and the metrics endpoint) listens; port 0 in the config becomes the real port. */
  readonly addresses: readonly { protocol: BridgeProtocol | "metrics"; host: string; port: number }[];
  /**
   * New accounts, auth and limits without dropping open sessions, all or nothing: a listener whose
   * settings changed is started anew (the old one stops accepting and its open sessions get 30 s in the
   * background). When a listener cannot start (its port is in use), it rejects and nothing changed.
   */
  reload(config: BridgeConfig): Promise<void>;
  /** Stops accepting; open sessions get up to `drainMs` to finish. */
  close(options?: { drainMs?: number }): Promise<void>;
  status(): BridgeStatus;
  /** Prometheus text, as `/metrics` serves it. */
  metrics(): string;
  /**
   * Resolves once the mapped accounts' stored passwords were tried — in the background after the start
   * and after each reload, so that a refused one is in `status()` before a device logs in. Never rejects.
   */
  storedPasswordSignIns(): Promise<void>;
}

/** How long the open sessions of a listener that a reload replaced or removed get to finish. */
const RELOAD_DRAIN_MS = 30_000;

/** The bridge: listeners for SMTP (and IMAP/POP3 relays) in front of Microsoft 365, with one config. */
export async function startBridge(initial: BridgeConfig, options: StartBridgeOptions = {}): Promise<Bridge> {
  let config = initial;
  const env = options.env ?? process.env;
  const log = safeLogger(
    options.logger ?? consoleLogger(config.logLevel, undefined, config.logFormat),
    "bridge",
  );
  const startedAt = new Date().toISOString();
  let signingIn: Promise<void> = Promise.resolve();
  const sendHeldNow = (account: string) => {
    spool
      ?.wake(account)
      .catch((error: unknown) =>
        log.warn(
          `spool: could not send the messages held for account ${account} now (${(error as Error).message})`,
        ),
      );
  };
  const metrics = createBridgeMetrics();
  const webhook = createWebhook(config.webhookUrl, log);
  const problems = createSignInProblems({
    logger: log,
    metrics,
    webhook,
    // What the spool held for a person's fix goes out as soon as the fix is seen.
    onResolved: (account) => sendHeldNow(account),
  });
  const throttling = createUpstreamThrottling({ logger: log, metrics });
  const certificates = createListenerCertificates(log, metrics, webhook);
  const guard = createLockoutGuard({
    settings: config.lockout,
    logger: log,
    onRefusal: (reason) => metrics.inc("m365_bridge_lockout_refusals_total", { reason }),
  });
  const ca = await readCa(config);
  const { cache, pepper, redis, closeCache: closeTokenCache } = await openTokenCache(config, env, log);
  // A fleet on one Redis token cache shares one sign-in per account, so a throttled mailbox is held by all.
  const sharedHolds = redis ? shareThrottling(throttling, redis, log) : undefined;
  // Read through `credentials`, so a reload's new `sentCopies` applies to the next message; a fleet on one
  // Redis shares what its bridges sent (a client's SMTP and IMAP may reach different bridges).
  const sentCopies = new SentCopies(
    (name) => credentials.account(name)?.sentCopies === "drop",
    (account) => metrics.inc("m365_bridge_sent_copies_left_out_total", { account }),
    redis ? redisSentCopies(redis, log) : undefined,
  );
  const closeCache = async () => {
    await sharedHolds?.close();
    await closeTokenCache();
  };
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
    onProblem: (account, user, error, route) => problems.report(account, user, error, route),
    onDelivered: (account, user, route) => problems.succeeded(account, user, route),
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
        // The device had its 250: a message that failed for good, or that a person must decide on, is
        // posted (a fleet on one Redis spool posts it once, from the bridge whose attempt settled it).
        onNeedsAPerson: (entry) =>
          webhook.post({
            type: entry.state === "failed" ? "spool-message-failed" : "spool-message-uncertain",
            account: entry.owner,
            id: entry.id,
            messageId: entry.messageId,
            ...(entry.subject ? { subject: entry.subject } : {}),
            attempts: entry.attempts,
            ...(entry.error ? { error: entry.error } : {}),
            at: entry.updatedAt,
          }),
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
    // A log collector gets the fields themselves, not only the line to parse.
    const fields = initial.logFormat === "json" ? { session: { ...record } } : undefined;
    if (record.result === "ok") log.info(line, fields);
    else log.warn(line, fields);
  };

  /** A listener's TLS material and options under `settings`; the returned function binds it. */
  async function prepareListener(l: ListenerConfig, settings: BridgeConfig): Promise<BindListener> {
    const tls = await certificates.load(l, settings);
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
      throttling,
      sentCopies,
      problems,
    };
    const endpoint = l.protocol === "smtp" ? undefined : settings.m365[l.protocol];
    return async (port = l.port) => {
      let door: FrontDoor;
      if (l.protocol === "smtp") {
        const noAuth = l.noAuth;
        const noAuthMatch = noAuth ? networkMatcher(noAuth.networks) : undefined;
        door = await startSmtpFrontDoor({
          ...base,
          port,
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
        door = await start({
          ...base,
          port,
          upstream: {
            host: endpoint!.host,
            port: endpoint!.port,
            security: "tls",
            ...(ca ? { ca } : {}),
          },
        });
      }
      certificates.presented(door, tls);
      log.info(`listening: ${l.protocol} ${l.security} on ${door.address.host}:${door.address.port}`);
      return door;
    };
  }

  const listeners = createListenerSet({ logger: log, drainMs: RELOAD_DRAIN_MS });
  // Reloads and close() run one at a time, in the order they were asked for.
  const serial = serialQueue();
  let closed = false;
  let metricsServer: Server | undefined;
  let metricsAddress: { host: string; port: number } | undefined;
  try {
    await listeners.replace(config.listeners, (l) => prepareListener(l, config));
    certificates.updateMetric(listeners.running);
    if (config.metrics) {
      // Asked from outside: see first whether a missing device-code sign-in was stored meanwhile
      // (`bridge login`); accounts without that problem cost no cache read per scrape.
      const started = await startMetricsServer(config.metrics, metrics, {
        status: async () => {
          await credentials.checkStoredSignIns({ missingOnly: true });
          return status();
        },
        spool: () => spool,
      });
      metricsServer = started.server;
      metricsAddress = started.address;
    }
  } catch (error) {
    await listeners.close(0);
    await spool?.close();
    await credentials.dispose();
    await closeCache();
    throw error;
  }

  function certificateStatus(door: FrontDoor): Pick<BridgeListenerStatus, "certificate"> {
    const material = certificates.of(door);
    return material
      ? { certificate: { file: material.certPath, expiresAt: material.expiresAt.toISOString() } }
      : {};
  }

  /** Presents renewed certificate files (and a generated certificate made anew near its end) without a restart. */
  const renewCertificates = () =>
    serial(async () => {
      if (closed) return;
      (await certificates.prepareRenewal(listeners.running, config))();
      certificates.updateMetric(listeners.running);
    }).catch((error: unknown) =>
      log.error("could not read the listeners' certificates again; they keep presenting the ones they have", {
        error,
      }),
    );
  const certificateCheck = setInterval(renewCertificates, options.certificateCheckMs ?? CERTIFICATE_CHECK_MS);
  certificateCheck.unref();

  function status(): BridgeStatus {
    // Sessions on a listener a reload replaced are still open sessions.
    const doors = [...listeners.running.map((l) => l.door), ...listeners.draining];
    for (const door of doors) open.set(door.protocol, 0);
    for (const door of doors) open.set(door.protocol, (open.get(door.protocol) ?? 0) + door.openSessions);
    for (const [protocol, n] of open) metrics.set("m365_bridge_sessions_open", { protocol }, n);
    return {
      startedAt,
      listeners: listeners.running.map((l) => ({
        protocol: l.config.protocol,
        host: l.door.address.host,
        port: l.door.address.port,
        security: l.config.security,
        openSessions: l.door.openSessions,
        ...certificateStatus(l.door),
      })),
      accounts: config.accounts.map((a) => ({
        name: a.name,
        mode:
          a.credentials.mode === "mapped" && a.credentials.signIn
            ? `mapped, ${a.credentials.signIn}`
            : a.credentials.mode,
        delivery: a.delivery,
        answer: a.answer,
        sentCopies: a.sentCopies,
      })),
      signInProblems: problems.list(),
      lockout: guard.snapshot(),
      throttled: throttling.list(),
      ...(spool ? { spool: spool.counts() } : {}),
      ...(metricsAddress ? { metrics: metricsAddress } : {}),
    };
  }

  const bridge: Bridge = {
    get addresses() {
      return [
        ...listeners.running.map((l) => ({ protocol: l.config.protocol, ...l.door.address })),
        ...(metricsAddress ? [{ protocol: "metrics" as const, ...metricsAddress }] : []),
      ];
    },
    reload: (next) =>
      serial(async () => {
        if (closed) {
          throw new M365MailError("ABORTED", "the bridge is closed; start a new one to apply a config", {
            source: "bridge",
          });
        }
        const before = config;
        // Listeners that stay read their certificate files again (a renewal needs only a reload); a file
        // that cannot be used fails the reload here, before anything changed.
        const presentRenewed = await certificates.prepareRenewal(
          listeners.running.filter((r) => next.listeners.some((l) => sameListenerSettings(l, r.config))),
          next,
        );
        // The listeners first: the accounts and settings of `next` apply only once every listener of
        // `next` is listening; otherwise `replace` throws with the old listeners, accounts and settings intact.
        await listeners.replace(
          next.listeners,
          (l) => prepareListener(l, next),
          () => {
            presentRenewed();
            credentials.reload(next);
            config = next;
            guard.update(next.lockout);
            webhook.setUrl(next.webhookUrl);
          },
        );
        if (JSON.stringify(next.spool) !== JSON.stringify(before.spool)) {
          log.warn("reload: spool settings changed; they apply after a restart");
        }
        if (JSON.stringify(next.tokenCache) !== JSON.stringify(before.tokenCache)) {
          log.warn("reload: tokenCache settings changed; they apply after a restart");
        }
        if (next.logLevel !== before.logLevel || next.logFormat !== before.logFormat) {
          log.warn("reload: logLevel or logFormat changed; they apply after a restart");
        }
        certificates.updateMetric(listeners.running);
        log.info(`reload: ${next.accounts.length} account(s), ${listeners.running.length} listener(s)`);
        await credentials.checkStoredSignIns();
        signingIn = credentials.signInStoredPasswords(firstProtocol(next));
        // A fixed delivery problem (consent granted, SMTP AUTH on) shows only when a delivery works: the
        // spool tries what it held for those accounts now, as a reload re-signs accounts with a sign-in problem.
        for (const account of new Set(
          problems.list().flatMap((p) => (p.area === "sign-in" ? [] : [p.account])),
        ))
          sendHeldNow(account);
      }),
    close: ({ drainMs = 30_000 } = {}) =>
      serial(async () => {
        if (closed) return;
        closed = true;
        clearInterval(certificateCheck);
        // Listeners a reload replaced are still draining: their sessions get the same deadline.
        await listeners.close(drainMs);
        if (metricsServer) {
          metricsServer.closeAllConnections();
          await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
        }
        // Deliveries in flight finish (or are recorded as uncertain) before the transports close.
        await spool?.close();
        await delivery.close();
        await credentials.dispose();
        await closeCache();
        webhook.close();
        log.info("stopped");
      }),
    status,
    metrics: () => {
      status();
      return metrics.render();
    },
    storedPasswordSignIns: () => signingIn,
  };
  await credentials.checkStoredSignIns();
  signingIn = credentials.signInStoredPasswords(firstProtocol(config));
  return bridge;
}

/** What a mapped account's first sign-in is for: SMTP when the bridge has an SMTP listener. */
function firstProtocol(config: BridgeConfig): BridgeProtocol {
  const protocols = config.listeners.map((l) => l.protocol);
  return protocols.includes("smtp") ? "smtp" : (protocols[0] ?? "smtp");
}

async function startMetricsServer(
  where: { host: string; port: number },
  metrics: BridgeMetrics,
  sources: { status: () => Promise<BridgeStatus>; spool: () => Spool | undefined },
): Promise<{ server: Server; address: { host: string; port: number } }> {
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://bridge");
    const path = url.pathname;
    if (req.method === "GET" && path === "/metrics") {
      await sources.status();
      res
        .writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
        .end(metrics.render());
      return;
    }
    if (req.method === "GET" && path === "/status") {
      json(res, 200, await sources.status());
      return;
    }
    const resolve = /^\/spool\/([^/]+)\/(retry|discard)$/.exec(path);
    if ((req.method === "GET" && path === "/spool") || (req.method === "POST" && resolve)) {
      const spool = sources.spool();
      if (!spool) {
        json(res, 404, { error: { code: "CONFIG_INVALID", message: "this bridge has no spool" } });
        return;
      }
      try {
        if (resolve) {
          // The endpoint may be open to a Prometheus server on the network; changes come from this host only.
          if (!isLoopbackAddress(req.socket.remoteAddress ?? "")) {
            json(res, 403, {
              error: { code: "ACCESS_DENIED", message: "spool changes are taken from this machine only" },
            });
            return;
          }
          // A web page on this machine could POST here too, but cannot add a header without a CORS
          // preflight, which this server never answers.
          if (req.headers[SPOOL_CHANGE_HEADER] !== "1") {
            json(res, 403, {
              error: {
                code: "ACCESS_DENIED",
                message: `spool changes need the header ${SPOOL_CHANGE_HEADER}: 1`,
              },
            });
            return;
          }
          json(
            res,
            200,
            await spool.resolve(decodeURIComponent(resolve[1]!), resolve[2] as "retry" | "discard"),
          );
          return;
        }
        const state = url.searchParams.get("state") ?? undefined;
        if (state !== undefined && !(OUTBOX_STATES as readonly string[]).includes(state)) {
          json(res, 400, {
            error: { code: "CONFIG_INVALID", message: `state must be one of ${OUTBOX_STATES.join(", ")}` },
          });
          return;
        }
        const limit = Math.min(Math.max(Number(url.searchParams.get("limit") ?? 50) || 50, 1), 1000);
        json(res, 200, {
          messages: await spool.list({ ...(state ? { state: state as OutboxState } : {}), limit }),
        });
      } catch (error) {
        const code = isM365MailError(error) ? error.code : "ERROR";
        json(res, code === "NOT_FOUND" ? 404 : code === "MESSAGE_INVALID" ? 409 : 500, {
          error: { code, message: error instanceof Error ? error.message : String(error) },
        });
      }
      return;
    }
    res
      .writeHead(404, { "content-type": "text/plain" })
      .end("GET /metrics, /status or /spool; POST /spool/<id>/retry or /spool/<id>/discard\n");
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
