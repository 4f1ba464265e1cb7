import type { AddressInfo, Socket } from "node:net";
import { M365MailError } from "@m365-mail/core";
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from "smtp-server";
import type { EmulatorContext, FaultSpec } from "../context.js";
import { checkSmtpAuth, type SmtpPrincipal } from "./smtp-auth.js";
import {
  ConnectionTracker,
  DEFAULT_SMTP_LIMITS,
  MessageRate,
  normalizeSmtpLimits,
  type SmtpLimits,
} from "./smtp-limits.js";
import { fromAddresses, withMessageId } from "./smtp-message.js";
import {
  NOT_AUTHENTICATED_TEXT,
  replyError,
  SMTP_SERVER_NAME,
  type SmtpReply,
  smtpReplies,
} from "./smtp-replies.js";

/** Well-known folders the SMTP part writes to: recipients' Inbox, the sender's Sent Items. */
export type SmtpDeliveryFolder = "inbox" | "sentitems";

/** Where accepted mail goes: the emulator's one mailbox store (readable over Graph, IMAP and POP3). */
export interface SmtpMailSink {
  deliver(
    mailbox: string,
    folder: SmtpDeliveryFolder,
    raw: Buffer,
    options?: { seen?: boolean },
  ): Promise<unknown>;
}

export interface StartSmtpPartOptions {
  /** @default 0 (a free port) */
  port?: number;
  sink: SmtpMailSink;
  limits?: Partial<SmtpLimits>;
  /** Milliseconds of inactivity before the server hangs up. @default 60000 */
  socketTimeoutMs?: number;
}

export interface SmtpPartStats {
  /** Authenticated connections per mailbox right now. */
  open: Record<string, number>;
  /** Most authenticated connections per mailbox at once since the last `resetStats()`. */
  peak: Record<string, number>;
  /** Accepted messages waiting for a later rate window ("delay" mode). */
  delayed: number;
}

/** The emulator's SMTP submission endpoint (smtp.office365.com:587 style). */
export interface SmtpPart {
  readonly host: string;
  readonly port: number;
  limits(): Readonly<SmtpLimits>;
  /** Changes apply to the next command; benchmarks lift the rate with `{ messagesPerWindow: 0 }`. */
  setLimits(patch: Partial<SmtpLimits>): Readonly<SmtpLimits>;
  stats(): SmtpPartStats;
  resetStats(): void;
  /** Delivers messages still held by the rate limit, then stops. */
  close(): Promise<void>;
}

interface SessionState {
  principal?: SmtpPrincipal;
}

// The emulator advertises Exchange Online's SIZE (150 MB) and its 500 recipients per message.
const MAX_MESSAGE_BYTES = 157_286_400;
const MAX_RECIPIENTS = 500;

/**
 * Starts SMTP submission on `ctx.host`: plaintext + STARTTLS with the emulator's certificate, AUTH
 * XOAUTH2 only after STARTTLS, Exchange Online's replies and limits, and delivery into the store
 * (each in-tenant recipient's Inbox and the sending mailbox's Sent Items).
 */
export async function startSmtpPart(ctx: EmulatorContext, options: StartSmtpPartOptions): Promise<SmtpPart> {
  let limits = normalizeSmtpLimits({ ...DEFAULT_SMTP_LIMITS, ...ctx.sendingQuota.limits, ...options.limits });
  // The recipient quota is the mailbox's, shared with Graph: its numbers live in ctx.sendingQuota.
  ctx.sendingQuota.setLimits(limits);
  const current = (): SmtpLimits => ({ ...limits, ...ctx.sendingQuota.limits });
  const tracker = new ConnectionTracker();
  const rate = new MessageRate();
  const states = new Map<string, SessionState>();
  const sockets = new Map<string, Socket>();
  const held = new Set<{ timer: NodeJS.Timeout; run: () => Promise<void> }>();
  const count = (name: string) => ctx.counters.increment(name);

  const state = (session: SMTPServerSession): SessionState => {
    let s = states.get(session.id);
    if (!s) {
      s = {};
      states.set(session.id, s);
    }
    return s;
  };

  const socketKey = (address: string, port: number) => `${address}|${port}`;

  // Applies an armed fault at one stage ("/auth", "/mail", "/data"). Returns a reply to send instead,
  // "reset" when the connection was dropped, or undefined to go on (after any delay).
  const fault = async (
    session: SMTPServerSession,
    stage: string,
  ): Promise<SmtpReply | "reset" | undefined> => {
    const spec: FaultSpec | undefined = ctx.faults.take("smtp", stage);
    if (!spec) return undefined;
    count(`smtp.faults.${spec.kind}`);
    switch (spec.kind) {
      case "delay":
        await new Promise((resolve) => setTimeout(resolve, spec.delayMs ?? 1000));
        return undefined;
      case "reset": {
        sockets.get(socketKey(session.remoteAddress, session.remotePort))?.destroy();
        return "reset";
      }
      case "status429":
        return smtpReplies.concurrentConnections();
      case "status500":
      case "status503":
      case "status504":
        return smtpReplies.temporaryServerError();
      default:
        // HTTP-only faults (malformed JSON, empty token) have no SMTP meaning.
        return undefined;
    }
  };

  const deliverAll = async (principal: SmtpPrincipal, recipients: string[], raw: Buffer): Promise<void> => {
    for (const rcpt of recipients) {
      const user = ctx.findUser(rcpt);
      if (!user) {
        // Outside the emulated tenants: Exchange would relay it; here it goes nowhere.
        count("smtp.recipients.external");
        continue;
      }
      await options.sink.deliver(user.upn.toLowerCase(), "inbox", raw);
      count("smtp.delivered");
    }
    // Exchange files the sent copy as read.
    await options.sink.deliver(principal.mailbox, "sentitems", raw, { seen: true });
  };

  const server = new SMTPServer({
    name: SMTP_SERVER_NAME,
    banner: "Microsoft ESMTP MAIL Service ready (m365-mail emulator)",
    key: ctx.tls.keyPem,
    cert: ctx.tls.certPem,
    secure: false,
    hideSTARTTLS: false,
    allowInsecureAuth: false,
    authMethods: ["XOAUTH2"],
    authOptional: false,
    authRequiredMessage: NOT_AUTHENTICATED_TEXT,
    size: MAX_MESSAGE_BYTES,
    maxRecipients: MAX_RECIPIENTS,
    disableReverseLookup: true,
    socketTimeout: options.socketTimeoutMs ?? 60_000,
    closeTimeout: 1_000,
    // The pool keeps a connection for many messages; Exchange does not cap unauthenticated chatter low.
    maxAllowedUnauthenticatedCommands: 20,
    logger: false,

    onConnect(session, callback) {
      count("smtp.connections");
      // Exchange offers AUTH only once TLS is up: hide it from the plaintext EHLO.
      session.disabledCommands = ["AUTH"];
      callback();
    },

    onSecure(_socket, session, callback) {
      session.disabledCommands = [];
      callback();
    },

    onAuth(auth: SMTPServerAuthentication, session, callback) {
      void (async () => {
        const injected = await fault(session, "/auth");
        if (injected === "reset") return;
        if (injected) return callback(replyError(injected));
        const result = checkSmtpAuth(ctx, auth.username ?? "", auth.accessToken ?? "");
        if (!result.ok) {
          count("smtp.auth.failed");
          ctx.log(`smtp: AUTH XOAUTH2 refused for ${auth.username}: ${result.reason}`);
          return callback(replyError(result.reply));
        }
        const { principal } = result;
        state(session).principal = principal;
        const open = tracker.add(principal.mailbox, session.id);
        const peakName = `smtp.connections.peak:${principal.mailbox}`;
        const recorded = ctx.counters.snapshot()[peakName] ?? 0;
        // A counter whose value is the peak, so tests read it next to the others.
        if (open > recorded) ctx.counters.increment(peakName, open - recorded);
        count("smtp.auth.ok");
        callback(null, { user: principal.mailbox });
      })();
    },

    onMailFrom(_address, session, callback) {
      void (async () => {
        // Before STARTTLS AUTH is hidden, which makes smtp-server skip its own "authenticate first" check.
        if (!state(session).principal)
          return callback(replyError({ code: 530, text: NOT_AUTHENTICATED_TEXT }));
        const injected = await fault(session, "/mail");
        if (injected === "reset") return;
        if (injected) return callback(replyError(injected));
        callback();
      })();
    },

    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        void (async () => {
          const principal = state(session).principal;
          if (!principal) return callback(replyError({ code: 530, text: NOT_AUTHENTICATED_TEXT }));
          if (stream.sizeExceeded) return callback(); // smtp-server answers 552 itself
          const injected = await fault(session, "/data");
          if (injected === "reset") return;
          if (injected) return callback(replyError(injected));

          if (tracker.rank(principal.mailbox, session.id) >= limits.maxConnectionsPerMailbox) {
            count("smtp.rejected.concurrency");
            return callback(replyError(smtpReplies.concurrentConnections()));
          }
          const submitted = Buffer.concat(chunks);
          const envelopeFrom = session.envelope.mailFrom
            ? session.envelope.mailFrom.address.toLowerCase()
            : "";
          const froms = [envelopeFrom, ...fromAddresses(submitted)].filter(Boolean);
          const denied = froms.find((f) => !principal.sendAs.has(f));
          if (denied) {
            count("smtp.rejected.sendas");
            return callback(replyError(smtpReplies.sendAsDenied(principal.mailbox, denied)));
          }
          const now = Date.now();
          if (limits.rateLimitMode === "reject" && rate.wouldExceed(principal.mailbox, limits, now)) {
            count("smtp.rate.rejected");
            return callback(replyError(smtpReplies.messageRateExceeded()));
          }
          const recipients = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
          if (!ctx.sendingQuota.admit(principal.mailbox, recipients.length, now)) {
            count("smtp.rejected.quota");
            return callback(replyError(smtpReplies.submissionQuotaExceeded()));
          }
          const at = rate.admit(principal.mailbox, limits, now);
          const { raw, messageId } = withMessageId(submitted, SMTP_SERVER_NAME);
          count("smtp.messages");
          count(`smtp.messages:${principal.mailbox}`);
          if (at > now) {
            // Accepted now, delivered in a later window: Exchange carries excess over to the next minutes.
            count("smtp.rate.delayed");
            const entry = {
              timer: setTimeout(() => {
                held.delete(entry);
                void entry.run();
              }, at - now),
              run: () =>
                deliverAll(principal, recipients, raw).catch((error: unknown) =>
                  ctx.log(`smtp: delayed delivery failed: ${String(error)}`),
                ),
            };
            held.add(entry);
            const r = smtpReplies.queued(messageId);
            return callback(null, r.text);
          }
          try {
            await deliverAll(principal, recipients, raw);
          } catch (error) {
            ctx.log(`smtp: delivery into the store failed: ${String(error)}`);
            return callback(replyError(smtpReplies.temporaryServerError()));
          }
          callback(null, smtpReplies.queued(messageId).text);
        })();
      });
    },

    onClose(session) {
      const principal = states.get(session.id)?.principal;
      if (principal) tracker.remove(principal.mailbox, session.id);
      states.delete(session.id);
      sockets.delete(socketKey(session.remoteAddress, session.remotePort));
    },
  });

  // Raw sockets by peer address, so that a "reset" fault can drop one abruptly.
  server.server.on("connection", (socket: Socket) => {
    const key = socketKey(socket.remoteAddress ?? "", socket.remotePort ?? 0);
    sockets.set(key, socket);
    socket.once("close", () => sockets.delete(key));
  });
  server.on("error", (error) => ctx.log(`smtp: ${error.message}`));

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new M365MailError(
          "CONFIG_INVALID",
          `the SMTP part cannot listen on ${ctx.host}:${options.port ?? 0}`,
          {
            source: "emulator",
            cause: error,
            hint: "Choose another SMTP port (or 0 for a free one).",
          },
        ),
      );
    };
    server.server.once("error", onError);
    server.listen(options.port ?? 0, ctx.host, () => {
      server.server.off("error", onError);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  ctx.log(`smtp: listening on ${ctx.host}:${port} (STARTTLS, AUTH XOAUTH2)`);

  return {
    host: ctx.host,
    port,
    limits: current,
    setLimits(patch) {
      limits = normalizeSmtpLimits({ ...current(), ...patch });
      ctx.sendingQuota.setLimits(limits);
      return current();
    },
    stats: () => ({ ...tracker.snapshot(), delayed: held.size }),
    resetStats() {
      tracker.resetPeaks();
      rate.reset();
    },
    async close() {
      const pending = [...held];
      held.clear();
      for (const entry of pending) clearTimeout(entry.timer);
      for (const socket of sockets.values()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(pending.map((entry) => entry.run()));
    },
  };
}
