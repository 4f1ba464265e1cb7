import { createServer, type Socket } from "node:net";
import { createSecureContext, type SecureContext } from "node:tls";
import { M365MailError, safeLogger } from "@m365-mail/core";
import {
  type BridgeProtocol,
  clientLabel,
  type FrontDoor,
  type FrontDoorOptions,
  type SessionRecord,
} from "../front-door.js";
import { ClientSession } from "./client-session.js";

/** Why a connection is turned away or ended by the bridge rather than by the client. */
export type GoodbyeReason = "busy" | "not-allowed" | "login-timeout" | "idle" | "shutdown" | "too-long";

/** What a relay protocol (IMAP, POP3) plugs into the shared listener. */
export interface RelayProtocol {
  readonly protocol: BridgeProtocol;
  /** The line a client gets before the bridge closes on it (`* BYE …`, `-ERR …`), CRLF included. */
  goodbye(reason: GoodbyeReason): string;
  /** Runs one accepted session until it ends (logout, error, or its socket closes). */
  run(session: ClientSession, context: RelayContext): Promise<void>;
}

export interface RelayContext {
  readonly options: FrontDoorOptions;
  /** For STARTTLS/STLS; undefined on a plain listener. Replaced when the certificate is renewed. */
  secureContext: SecureContext | undefined;
}

/** Handshakes (implicit TLS, STARTTLS) get at most this long, and never longer than the login timeout. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** @default drain time for `close()` without options. */
const DEFAULT_DRAIN_MS = 5000;

/**
 * The listener both relays share: accepts connections, turns away those over a limit or not allowed
 * with the protocol's own goodbye, wraps implicit TLS, arms the login and idle timers, runs the protocol,
 * and writes one `SessionRecord` per connection. `close()` stops accepting, says goodbye to clients
 * still logging in, and gives relayed sessions `drainMs` to finish.
 */
export async function startRelayListener(
  options: FrontDoorOptions,
  relay: RelayProtocol,
): Promise<FrontDoor> {
  const log = safeLogger(options.logger, `bridge ${relay.protocol}`);
  if (options.security !== "plain" && !options.tls) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `the ${relay.protocol} listener on ${options.host}:${options.port} uses "${options.security}" but has no TLS key and certificate`,
      { source: "bridge", hint: 'Give the listener a key and certificate, or set its security to "plain".' },
    );
  }
  if (!options.upstream) {
    throw new M365MailError("CONFIG_INVALID", `the ${relay.protocol} listener has no upstream server`, {
      source: "bridge",
      hint: `Set the ${relay.protocol} upstream (Exchange Online: outlook.office365.com, ${relay.protocol === "imap" ? 993 : 995}, tls).`,
    });
  }
  const context: RelayContext = {
    options,
    secureContext: options.tls ? createSecureContext(options.tls) : undefined,
  };
  const { limits } = options;
  const sessions = new Set<ClientSession>();
  // Each connection's handler, done once its record is written: close() waits for these.
  const handlers = new Set<Promise<void>>();
  const perIp = new Map<string, number>();
  let closing = false;

  const record = (session: ClientSession) => {
    const entry: SessionRecord = {
      protocol: relay.protocol,
      client: clientLabel(session.address, session.raw.remotePort),
      ...(session.account ? { account: session.account } : {}),
      ...(session.upstream ? { upstream: session.upstream } : {}),
      bytesIn: session.raw.bytesRead,
      bytesOut: session.raw.bytesWritten,
      durationMs: Date.now() - session.startedAt,
      result: session.result,
      ...(session.errorCode ? { errorCode: session.errorCode } : {}),
    };
    log.debug("session ended", { ...entry });
    try {
      options.onSession?.(entry);
    } catch (error) {
      log.warn("onSession threw", { error });
    }
  };

  const accept = async (raw: Socket) => {
    const session = new ClientSession(raw, relay.protocol);
    const ip = session.address;
    sessions.add(session);
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    raw.setNoDelay(true);
    try {
      let refusal: GoodbyeReason | undefined;
      if (closing) refusal = "shutdown";
      else if (options.isClientAllowed && !options.isClientAllowed(ip)) refusal = "not-allowed";
      else if (sessions.size > limits.maxConnections || (perIp.get(ip) ?? 0) > limits.maxConnectionsPerIp)
        refusal = "busy";
      if (options.security === "tls") {
        // A TLS client cannot read a plain-text refusal: finish the handshake, then say why.
        await session.startTls(context.secureContext!, Math.min(HANDSHAKE_TIMEOUT_MS, limits.loginTimeoutMs));
      }
      if (refusal) {
        log.info(`refused a connection from ${ip}: ${refusal}`);
        session.result = "refused";
        session.errorCode = refusal;
        session.end(relay.goodbye(refusal));
        return;
      }
      const loginTimer = setTimeout(() => {
        if (session.stage !== "login") return;
        session.result = "timeout";
        session.errorCode = "login-timeout";
        session.end(relay.goodbye("login-timeout"));
      }, limits.loginTimeoutMs);
      raw.setTimeout(limits.idleTimeoutMs, () => {
        session.result = "timeout";
        session.errorCode = "idle";
        if (session.stage === "login") session.end(relay.goodbye("idle"));
        else session.destroy();
      });
      try {
        await relay.run(session, context);
      } finally {
        clearTimeout(loginTimer);
      }
    } catch (error) {
      if (session.result === "ok") {
        session.result = "error";
        session.errorCode = error instanceof M365MailError ? error.code : "internal";
      }
      // A failed TLS handshake from a port scanner is not worth more than debug.
      log.debug(`session from ${ip} ended with an error`, { error });
      session.destroy();
    } finally {
      if (!raw.destroyed) session.end();
      await session.closed;
      sessions.delete(session);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
      record(session);
    }
  };

  const server = createServer({ pauseOnConnect: false }, (raw) => {
    const handler = accept(raw);
    handlers.add(handler);
    void handler.finally(() => handlers.delete(handler));
  });
  server.on("error", (error) => log.error("listener error", { error }));
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        new M365MailError(
          "CONFIG_INVALID",
          `the ${relay.protocol} listener cannot listen on ${options.host}:${options.port}: ${error.code ?? error.message}`,
          {
            source: "bridge",
            cause: error,
            hint: "Pick a free port (ports below 1024 need root or CAP_NET_BIND_SERVICE) and an address of this machine.",
          },
        ),
      );
    };
    server.once("error", onError);
    server.listen(options.port, options.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address();
  const address =
    bound && typeof bound === "object"
      ? { host: bound.address, port: bound.port }
      : { host: options.host, port: options.port };
  log.info(`listening on ${address.host}:${address.port} (${options.security})`);

  let closed: Promise<void> | undefined;
  return {
    protocol: relay.protocol,
    address,
    get openSessions() {
      return sessions.size;
    },
    close(closeOptions = {}) {
      closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const session of sessions) {
          if (session.stage === "login") session.end(relay.goodbye("shutdown"));
        }
        const all = Promise.all([...sessions].map((s) => s.closed));
        const drainMs = closeOptions.drainMs ?? DEFAULT_DRAIN_MS;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
        clearTimeout(timer);
        for (const session of sessions) session.destroy();
        await Promise.all([...handlers]);
        await stopped;
      })();
      return closed;
    },
    useCertificate(tls) {
      context.secureContext = createSecureContext(tls);
    },
  };
}
