import type { AddressInfo, Socket } from "node:net";
import { M365MailError } from "@m365-mail/core";
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";
import type { AccountConfig, ListenerLimits } from "../config-schema.js";
import {
  clientLabel,
  type FrontDoor,
  type FrontDoorOptions,
  type SessionRecord,
  type SignedIn,
} from "../front-door.js";
import { authReply, bridgeReplies, deliveryReply, replyError } from "./smtp-replies.js";

/** What the SMTP front door needs beyond the common front-door options. */
export interface SmtpFrontDoorOptions extends FrontDoorOptions {
  readonly limits: ListenerLimits;
  /** The current settings of a signed-in account (delivery, send-as); read per message, so reload applies. */
  readonly accountSettings: (name: string) => AccountConfig | undefined;
  /**
   * Hands the message on (sync: to Microsoft 365; spool: to the outbox) and resolves with its Message-ID
   * and where it went ("graph", "smtp", "spool") for the session's log line.
   */
  readonly accept: (message: ArrivingMessage) => Promise<{ messageId: string; upstream: string }>;
  /** Devices on these networks may send without AUTH, as one account and one sender. */
  readonly noAuth?: {
    readonly isAllowed: (address: string) => boolean;
    readonly from: string;
    readonly signIn: () => Promise<SignedIn>;
  };
  /** Shown in the greeting. @default "m365-mail bridge" */
  readonly name?: string;
}

export interface AcceptedMessage {
  readonly signedIn: SignedIn;
  readonly account: AccountConfig;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly raw: Buffer;
}

/**
 * A message handed on at the DATA command, while its bytes are still arriving: `raw` resolves at the end
 * of DATA, or rejects with MessageNotReceived (too large, client gone) and then nothing may be sent.
 */
export interface ArrivingMessage extends Omit<AcceptedMessage, "raw"> {
  readonly raw: Promise<Buffer>;
}

/** Why an arriving message's bytes will never be complete. */
export class MessageNotReceived extends Error {
  override readonly name = "MessageNotReceived";
}

interface SessionState {
  signedIn?: SignedIn;
  /** Signed in as a no-AUTH network's account: every message must come from its one sender. */
  noAuth?: boolean;
  readonly startedAt: number;
  bytesIn: number;
  messages: number;
  result: string;
  errorCode?: string;
  upstream?: string;
  readonly loginTimer?: NodeJS.Timeout;
  /** Set while a message is arriving: the connection closing ends it unsent. */
  abandonMessage?: (reason: string) => void;
}

/**
 * SMTP in, Microsoft 365 out: a store-and-forward front door on the npm `smtp-server`. It accepts AUTH
 * PLAIN and LOGIN (never before TLS unless the listener is "plain"), checks the sender against the
 * account, and answers the end of DATA with what Microsoft 365 (sync) or the spool said. Without a
 * login — or a no-AUTH network — MAIL FROM is refused, so it is never an open relay.
 */
export async function startSmtpFrontDoor(options: SmtpFrontDoorOptions): Promise<FrontDoor> {
  const { limits, logger: log } = options;
  const states = new Map<string, SessionState>();
  const sockets = new Map<string, Socket>();
  const perIp = new Map<string, number>();
  const socketKey = (address: string, port: number) => `${address}|${port}`;
  const clientOf = (session: SMTPServerSession) => ({
    address: session.remoteAddress,
    port: session.remotePort,
    protocol: "smtp" as const,
    tls: session.secure,
  });
  const record = (session: SMTPServerSession, state: SessionState): SessionRecord => ({
    protocol: "smtp",
    client: clientLabel(session.remoteAddress, session.remotePort),
    ...(state.signedIn ? { account: state.signedIn.account } : {}),
    ...(state.upstream ? { upstream: state.upstream } : {}),
    bytesIn: state.bytesIn,
    bytesOut: 0,
    durationMs: Date.now() - state.startedAt,
    result: state.result,
    ...(state.errorCode ? { errorCode: state.errorCode } : {}),
  });

  const server = new SMTPServer({
    name: options.name ?? "m365-mail bridge",
    banner: "m365-mail bridge ESMTP (to Microsoft 365)",
    secure: options.security === "tls",
    ...(options.tls ? { key: options.tls.key as string, cert: options.tls.cert as string } : {}),
    hideSTARTTLS: options.security !== "starttls",
    // A "plain" listener exists for loopback and allowlisted networks; elsewhere AUTH waits for TLS.
    allowInsecureAuth: options.security === "plain",
    authMethods: ["PLAIN", "LOGIN"],
    authOptional: options.noAuth !== undefined,
    authRequiredMessage: bridgeReplies.authRequired().text,
    size: limits.maxMessageBytes,
    maxClients: limits.maxConnections,
    maxCommandLength: limits.maxLineBytes,
    socketTimeout: limits.idleTimeoutMs,
    closeTimeout: 30_000,
    disableReverseLookup: true,
    maxAllowedUnauthenticatedCommands: 20,
    logger: false,

    onConnect(session, callback) {
      const address = session.remoteAddress;
      if (options.isClientAllowed && !options.isClientAllowed(address)) {
        log.warn(`smtp: refused a connection from ${address}: not in listeners[].allowedNetworks`);
        return callback(replyError(bridgeReplies.clientNotAllowed(address)));
      }
      const open = (perIp.get(address) ?? 0) + 1;
      if (open > limits.maxConnectionsPerIp) {
        return callback(replyError(bridgeReplies.tooManyConnections()));
      }
      perIp.set(address, open);
      useExchangeSizeReply(server, session);
      // As Exchange does, a STARTTLS listener offers AUTH only once TLS is up (smtp-server would list it
      // and refuse it); MAIL FROM stays refused without a login, so nothing is sent in clear.
      if (options.security === "starttls" && !session.secure) session.disabledCommands = ["AUTH"];
      const loginTimer = setTimeout(() => {
        const state = states.get(session.id);
        if (state && !state.signedIn) {
          state.result = "timeout";
          sockets.get(socketKey(address, session.remotePort))?.destroy();
        }
      }, limits.loginTimeoutMs);
      loginTimer.unref();
      states.set(session.id, { startedAt: Date.now(), bytesIn: 0, messages: 0, result: "ok", loginTimer });
      callback();
    },

    onSecure(_socket, session, callback) {
      session.disabledCommands = [];
      callback();
    },

    onAuth(auth, session, callback) {
      const state = states.get(session.id);
      if (auth.method !== "PLAIN" && auth.method !== "LOGIN") {
        return callback(replyError({ code: 504, text: "5.7.4 Unrecognized authentication type" }));
      }
      // As over IMAP and POP3: the bridge maps logins to mailboxes itself, so an authorization identity
      // (AUTH PLAIN's first field) other than the login would be silently ignored — refused instead.
      const authzid = (auth as { authzid?: string }).authzid;
      if (authzid && authzid.toLowerCase() !== (auth.username ?? "").toLowerCase()) {
        if (state) state.result = "auth-failed";
        return callback(replyError(bridgeReplies.authzidRefused()));
      }
      options
        .authenticate(auth.username ?? "", auth.password ?? "", clientOf(session))
        .then((signedIn) => {
          if (state) {
            state.signedIn = signedIn;
            state.noAuth = false;
            clearTimeout(state.loginTimer);
          }
          callback(null, { user: signedIn.account });
        })
        .catch((error: unknown) => {
          if (state) {
            state.result = "auth-failed";
            state.errorCode = error instanceof M365MailError ? error.code : "ERROR";
          }
          callback(replyError(authReply(error)));
        });
    },

    onMailFrom(address, session, callback) {
      const state = states.get(session.id);
      if (!state) return callback(replyError(bridgeReplies.authRequired()));
      const sender = address.address.toLowerCase();
      // `MAIL FROM:<>`: a bounce or delivery report that an MTA (Postfix as a smarthost client) passes
      // on. Nobody is named, so nobody is impersonated: it is sent as the mailbox (see onData).
      const nullSender = sender === "";
      void (async () => {
        if (state.noAuth) {
          // The account's other addresses are for devices that log in, not for the network's device.
          if (!nullSender && sender !== options.noAuth?.from.toLowerCase()) {
            return callback(replyError(bridgeReplies.sendAsDenied()));
          }
          return callback();
        }
        if (!state.signedIn) {
          const noAuth = options.noAuth;
          if (!noAuth?.isAllowed(session.remoteAddress)) {
            return callback(replyError(bridgeReplies.authRequired()));
          }
          if (!nullSender && sender !== noAuth.from.toLowerCase()) {
            return callback(replyError(bridgeReplies.sendAsDenied()));
          }
          try {
            state.signedIn = await noAuth.signIn();
            state.noAuth = true;
            clearTimeout(state.loginTimer);
          } catch (error) {
            state.errorCode = error instanceof M365MailError ? error.code : "ERROR";
            return callback(replyError(deliveryReply(error)));
          }
          return callback();
        }
        const account = options.accountSettings(state.signedIn.account);
        if (!account) {
          // The account was removed by a reload: this session may no longer send.
          return callback(replyError(bridgeReplies.authRequired()));
        }
        const allowed = new Set(
          [state.signedIn.mailbox, state.signedIn.auth.username, ...account.sendAs].map((a) =>
            a.toLowerCase(),
          ),
        );
        if (!nullSender && !allowed.has(sender)) {
          log.info(`smtp: account ${account.name} may not send as ${sender} (accounts[].sendAs)`);
          return callback(replyError(bridgeReplies.sendAsDenied()));
        }
        callback();
      })();
    },

    onRcptTo(_address, session, callback) {
      if (session.envelope.rcptTo.length >= limits.maxRecipients) {
        return callback(replyError(bridgeReplies.tooManyRecipients()));
      }
      callback();
    },

    onData(stream: SMTPServerDataStream, session, callback) {
      const state = states.get(session.id);
      const signedIn = state?.signedIn;
      const account = signedIn ? options.accountSettings(signedIn.account) : undefined;
      let arrived!: (raw: Buffer) => void;
      let lost!: (error: MessageNotReceived) => void;
      const raw = new Promise<Buffer>((resolve, reject) => {
        arrived = resolve;
        lost = reject;
      });
      raw.catch(() => undefined);
      // Handed on now, not at the end of DATA: a sync SMTP delivery sends Exchange the envelope while
      // the client is still uploading, so the two round trips overlap.
      const outcome =
        state && signedIn && account
          ? options.accept({
              signedIn,
              account,
              // A null sender (a bounce or DSN an MTA relays) goes to Microsoft 365 as the mailbox's.
              mailFrom:
                (session.envelope.mailFrom ? session.envelope.mailFrom.address : "") || signedIn.mailbox,
              recipients: session.envelope.rcptTo.map((r) => r.address),
              raw,
            })
          : undefined;
      outcome?.catch(() => undefined);
      if (state) state.abandonMessage = (reason) => lost(new MessageNotReceived(reason));
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on("data", (chunk: Buffer) => {
        size += chunk.length;
        // Past the limit the rest is read and dropped: memory stays bounded.
        if (size <= limits.maxMessageBytes) chunks.push(chunk);
      });
      stream.on("end", () => {
        if (state) {
          state.bytesIn += size;
          state.abandonMessage = undefined;
        }
        if (stream.sizeExceeded || size > limits.maxMessageBytes) {
          lost(new MessageNotReceived("the message is over the size limit"));
          return callback(replyError(bridgeReplies.messageTooLarge()));
        }
        if (!state || !outcome || !account) return callback(replyError(bridgeReplies.authRequired()));
        arrived(Buffer.concat(chunks));
        outcome
          .then(({ messageId, upstream }) => {
            state.messages++;
            state.upstream = upstream;
            options.sentCopies?.remember(signedIn!.account, signedIn!.mailbox, messageId);
            callback(null, bridgeReplies.accepted(messageId).text);
          })
          .catch((error: unknown) => {
            const reply = deliveryReply(error);
            state.result = reply.code >= 500 ? "refused" : "deferred";
            state.errorCode = error instanceof M365MailError ? error.code : "ERROR";
            log.warn(`smtp: message from account ${account.name} not accepted: ${reply.code} ${reply.text}`);
            callback(replyError(reply));
          });
      });
    },

    onClose(session) {
      const state = states.get(session.id);
      states.delete(session.id);
      // Only an admitted connection has a state, and only it was counted in perIp.
      if (!state) return;
      const address = session.remoteAddress;
      const open = (perIp.get(address) ?? 1) - 1;
      if (open <= 0) perIp.delete(address);
      else perIp.set(address, open);
      state.abandonMessage?.("the client closed the connection during DATA");
      clearTimeout(state.loginTimer);
      options.onSession?.(record(session, state));
    },
  });

  server.server.on("connection", (socket: Socket) => {
    const key = socketKey(socket.remoteAddress ?? "", socket.remotePort ?? 0);
    sockets.set(key, socket);
    socket.once("close", () => sockets.delete(key));
  });
  server.on("error", (error: Error) => log.warn(`smtp: ${error.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(
        new M365MailError(
          "CONFIG_INVALID",
          `the SMTP listener cannot listen on ${options.host}:${options.port}`,
          {
            source: "bridge",
            cause: error,
            hint: "Pick a free port in listeners[].port (ports under 1024 need root or CAP_NET_BIND_SERVICE).",
          },
        ),
      );
    server.server.once("error", onError);
    server.listen(options.port, options.host, () => {
      server.server.off("error", onError);
      resolve();
    });
  });
  const bound = server.server.address() as AddressInfo;

  return {
    protocol: "smtp",
    address: { host: options.host, port: bound.port },
    get openSessions() {
      return states.size;
    },
    close({ drainMs = 30_000 } = {}) {
      (server.options as { closeTimeout?: number }).closeTimeout = Math.max(1, drainMs);
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
      });
    },
    useCertificate(tls) {
      // smtp-server builds each new connection's TLS (implicit or STARTTLS) from this context.
      server.updateSecureContext(tls);
    },
  };
}

type MailParamsCheck = (
  parsed: unknown,
) => { code: number; message: string; enhancedCode?: string | null } | null;

/**
 * smtp-server refuses a `MAIL FROM:<…> SIZE=` above the limit with its own text before `onMailFrom` runs;
 * this connection answers it as Exchange does instead (Postfix declares SIZE on every message and quotes
 * the reply in its bounce). Wraps smtp-server's private `_validateMailParams` of this one connection; when
 * a later smtp-server has none, its own text stays (test/smtp-limits.test.ts notices).
 */
function useExchangeSizeReply(server: SMTPServer, session: SMTPServerSession): void {
  const { connections } = server as unknown as {
    connections?: Set<{ session: unknown; _validateMailParams?: MailParamsCheck }>;
  };
  for (const connection of connections ?? []) {
    const check = connection._validateMailParams;
    if (connection.session !== session || typeof check !== "function") continue;
    connection._validateMailParams = (parsed) => {
      const error = check.call(connection, parsed);
      if (error?.code !== 552) return error;
      const reply = bridgeReplies.messageTooLarge();
      return { code: reply.code, message: reply.text, enhancedCode: null };
    };
    return;
  }
}
