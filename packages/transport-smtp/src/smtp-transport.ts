import { Readable } from "node:stream";
import {
  CONTRACT_VERSION,
  type Logger,
  M365MailError,
  type OperationOptions,
  type OutgoingMessage,
  parseAddress,
  parseAddressList,
  registerSecret,
  resolveCloud,
  type SendResult,
  safeLogger,
  type TokenProvider,
  type Transport,
  type VerifyCheck,
  type VerifyReport,
} from "@m365-mail/core";
import nodemailer, { type SendMailOptions } from "nodemailer";
import { buildMail } from "./build-message.js";
import { MessageRateLimiter } from "./message-rate-limiter.js";
import { backoffDelay, DEFAULT_RETRY, type SmtpRetryOptions, sleep } from "./retry.js";
import {
  type SmtpLikeError,
  SOURCE,
  type TokenFacts,
  tokenFacts,
  toM365Error,
  toSendError,
} from "./smtp-errors.js";
import { SmtpProbe } from "./smtp-probe.js";

export interface SmtpTransportOptions {
  /** Hands out Outlook tokens (scope `https://outlook.office.com/SMTP.Send`), e.g. `ropcTokenProvider(...)`. */
  auth: TokenProvider;
  /** @default the cloud's SMTP host: `smtp.office365.com` (from `auth.cloud`) */
  host?: string;
  /** @default the cloud's SMTP port: 587 (STARTTLS) */
  port?: number;
  /**
   * Send as this (shared) mailbox: `user=` names it, the token stays the signed-in delegate's, and
   * From defaults to it. The delegate needs Full Access and Send As on it.
   * @default auth.username
   */
  mailbox?: string;
  /** Pooled connections. Exchange allows 3 per mailbox (`432 4.3.2` beyond). @default 3 */
  maxConnections?: number;
  /**
   * Client-side limit so that Exchange's 30 messages a minute is never crossed: sends over it wait.
   * 0 or Infinity turns it off (only sensible against the emulator with its limit lifted).
   * @default 30
   */
  maxMessagesPerMinute?: number;
  /** CA certificate(s) to trust, e.g. the emulator's `caPem`. @default Node's trust store */
  ca?: string | Buffer | (string | Buffer)[];
  /** Connection, greeting and socket inactivity timeout. @default 60000 */
  timeoutMs?: number;
  /** Retries of 4xx replies and dropped connections, with exponential backoff; `false` for none. @default { attempts: 3, baseDelayMs: 1000, maxDelayMs: 30000 } */
  retry?: SmtpRetryOptions | false;
  /**
   * After a failure that leaves it unknown whether Exchange took the message (the connection dropped or
   * went silent after the final dot): `"resend"` retries it like any other failure (a second copy if the
   * first one was taken), `"report"` throws at once, so the caller can look in Sent Items first. Failures
   * that certainly sent nothing (`requestSent: false`) are retried either way.
   * @default "resend"
   */
  uncertainSends?: "resend" | "report";
  /** Receives redacted log lines. @default silent */
  logger?: Logger;
  /** Registry name. @default "smtp" */
  name?: string;
  /** Length of the rate window in milliseconds (tests shorten it). @default 60000 */
  rateWindowMs?: number;
}

/** SMTP AUTH (XOAUTH2) transport: sends only. */
export interface SmtpTransport extends Transport {
  /** The mailbox in `user=` and the default From. */
  readonly mailbox: string;
  send(message: OutgoingMessage, options?: OperationOptions): Promise<SendResult>;
  /**
   * Sends a message that is still arriving, as an SMTP relay receives it: the envelope goes to Exchange
   * at once and the bytes when `raw` resolves, so Exchange's envelope round trip overlaps the rest of
   * the client's upload. A Message-ID is added as `send` adds one. If `raw` rejects, the transaction
   * is abandoned before its end of data (nothing is sent) and `relay` rejects with that error. Retries
   * (4xx, a dropped connection) wait for the whole message and resend it, as `send` does.
   */
  relay(
    envelope: { from: string; to: readonly string[] },
    raw: PromiseLike<Uint8Array>,
    options?: OperationOptions,
  ): Promise<SendResult>;
}

declare module "@m365-mail/core" {
  interface TransportRegistry {
    smtp: SmtpTransport;
  }
}

/**
 * Sends as one Microsoft 365 mailbox over SMTP AUTH with OAuth (XOAUTH2 after STARTTLS) through a
 * nodemailer pool, within Exchange Online's limits (3 connections, 30 messages a minute).
 */
export function smtpTransport(options: SmtpTransportOptions): SmtpTransport {
  const { auth } = options;
  if (auth?.kind !== "token-provider") {
    throw new M365MailError("CONFIG_INVALID", "smtpTransport needs `auth`, a TokenProvider", {
      source: SOURCE,
      hint: "Pass auth: ropcTokenProvider({ tenantId, clientId, username, password }).",
    });
  }
  const cloud = resolveCloud(auth.cloud);
  const host = options.host ?? cloud.smtp.host;
  const port = options.port ?? cloud.smtp.port;
  const mailbox = (options.mailbox ?? auth.username).trim();
  const maxConnections = options.maxConnections ?? 3;
  const perMinute = options.maxMessagesPerMinute ?? 30;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const retry =
    options.retry === false ? { ...DEFAULT_RETRY, attempts: 0 } : { ...DEFAULT_RETRY, ...options.retry };
  const uncertainSends = options.uncertainSends ?? "resend";
  const log = safeLogger(options.logger, SOURCE);
  const name = options.name ?? "smtp";
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw configError(
      "maxConnections must be a positive integer",
      "Use 3 or less: Exchange allows 3 per mailbox.",
    );
  }
  if (!(perMinute >= 0)) {
    throw configError(
      "maxMessagesPerMinute must be 0 (off) or a positive number",
      "Use 30 (Exchange's limit).",
    );
  }
  if (uncertainSends !== "resend" && uncertainSends !== "report") {
    throw configError(
      `uncertainSends must be "resend" or "report", not ${JSON.stringify(uncertainSends)}`,
      'Use "report" to look in Sent Items yourself before sending again, or leave it unset.',
    );
  }
  if (!mailbox.includes("@")) {
    throw configError(
      `mailbox "${mailbox}" is not an address`,
      "Pass the mailbox's SMTP address, e.g. shared@contoso.com.",
    );
  }
  if (maxConnections > 3) {
    log.warn(`maxConnections ${maxConnections} is over Exchange's 3 per mailbox: expect 432 4.3.2 replies`);
  }
  const limiter = new MessageRateLimiter(perMinute, options.rateWindowMs ?? 60_000);
  const failure = () => ({ mailbox, signedInUser: auth.username, host, port, token: lastToken, cloud });

  // Facts about the last token handed out (never the token), to explain a 535.
  let lastToken: TokenFacts | undefined;
  // Set after Exchange refused a token: the next sign-in asks the provider for a fresh one.
  let renewNext = false;

  const getToken = async (
    forceRefresh: boolean,
    signal?: AbortSignal,
  ): Promise<{ token: string; expiresAt: Date }> => {
    const token = await auth.getAccessToken("outlook", { forceRefresh, signal });
    if (!token.token) {
      throw new M365MailError("AUTH_FAILED", "the token provider returned an empty access token", {
        source: SOURCE,
        hint: "Check the token provider (an empty token is a provider bug or a misbehaving proxy).",
      });
    }
    registerSecret(token.token, { rotating: true });
    lastToken = tokenFacts(token.token);
    return token;
  };

  const pool = nodemailer.createTransport({
    pool: true,
    host,
    port,
    secure: false,
    requireTLS: true,
    maxConnections,
    // Exchange does not cap messages per session; fewer sign-ins keep the pool fast.
    maxMessages: 1000,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    tls: { ...(options.ca ? { ca: options.ca } : {}), servername: /^[\d.:]+$/.test(host) ? undefined : host },
    auth: { type: "OAuth2", user: mailbox },
    logger: false,
    debug: false,
  });
  // nodemailer asks for a token per connection; renew=true only follows a 334 challenge (Gmail
  // style). Exchange answers 535 at once, so we also renew after a refusal ourselves (renewNext).
  pool.set(
    "oauth2_provision_cb",
    (
      _user: string,
      renew: boolean,
      callback: (err: Error | null, token?: string, expires?: number) => void,
    ) => {
      const force = renew || renewNext;
      renewNext = false;
      getToken(force).then(
        (t) => callback(null, t.token, t.expiresAt.getTime()),
        (error: unknown) => {
          // Carried to our catch untouched: nodemailer would overwrite an Error's `code`.
          const carrier = new Error("the token provider failed") as SmtpLikeError;
          carrier.m365Error =
            error instanceof M365MailError
              ? error
              : new M365MailError("AUTH_FAILED", "the token provider failed", {
                  source: SOURCE,
                  cause: error,
                });
          callback(carrier);
        },
      );
    },
  );

  let closed = false;
  const assertOpen = () => {
    if (closed) {
      throw new M365MailError("CONFIG_INVALID", "this SMTP transport is closed", {
        source: SOURCE,
        hint: "Create a new transport (or mailbox) after close().",
      });
    }
  };

  const isTokenRefusal = (error: SmtpLikeError) =>
    error.responseCode === 535 &&
    !/5\.7\.139|SmtpClientAuthentication is disabled/i.test(error.response ?? "");

  const assertRecipients = (to: readonly string[]) => {
    if (to.length === 0) {
      throw new M365MailError("MESSAGE_INVALID", "the message has no recipients", {
        source: SOURCE,
        hint: "Set to, cc or bcc.",
      });
    }
  };

  async function send(message: OutgoingMessage, opts: OperationOptions = {}): Promise<SendResult> {
    assertOpen();
    const built = buildMail(message, mailbox);
    assertRecipients(built.envelope.to);
    return deliver(
      () => built.mail,
      () => built.messageId,
      opts,
    );
  }

  async function relay(
    envelope: { from: string; to: readonly string[] },
    raw: PromiseLike<Uint8Array>,
    opts: OperationOptions = {},
  ): Promise<SendResult> {
    assertOpen();
    const to = parseAddressList([...envelope.to]).map((a) => a.address);
    assertRecipients(to);
    const built = Promise.resolve(raw).then((bytes) =>
      buildMail({ raw: bytes, from: envelope.from, to }, mailbox),
    );
    // Bytes that never arrive (or are no valid message) end the send: no attempt can succeed.
    let unsendable: { error: unknown } | undefined;
    built.catch((error: unknown) => {
      unsendable = { error };
    });
    let first = true;
    return deliver(
      async () => {
        if (!first) return (await built).mail;
        first = false;
        // The envelope now, the bytes as soon as they are here (a stream nodemailer reads after 354).
        return { envelope: { from: parseAddress(envelope.from).address, to }, raw: arrivingBytes(built) };
      },
      async () => (await built).messageId,
      opts,
      () => unsendable,
    );
  }

  async function deliver(
    mailFor: () => SendMailOptions | Promise<SendMailOptions>,
    messageIdOf: () => string | Promise<string>,
    opts: OperationOptions,
    /** Set when the message can never be sent (relay): that error ends the send, with no retry. */
    unsendable: () => { error: unknown } | undefined = () => undefined,
  ): Promise<SendResult> {
    let renewed = false;
    // Set once an attempt may have reached Exchange: an abort after it is no longer "nothing was sent".
    let earlier: M365MailError | undefined;
    const abortedAfter = (error: unknown): unknown =>
      earlier && error instanceof M365MailError && error.code === "ABORTED"
        ? new M365MailError(
            "ABORTED",
            `the send was aborted while waiting to try again; an earlier attempt may have been sent (${earlier.code})`,
            { source: SOURCE, cause: earlier },
          )
        : error;
    for (let attempt = 0; ; attempt++) {
      // Waiting for the rate limit sends nothing: an abort here is `requestSent: false`.
      const release = await limiter.acquire(opts.signal).catch((error: unknown) => {
        throw abortedAfter(error);
      });
      try {
        const mail = await mailFor();
        const info = await pool.sendMail({ ...mail, ...(opts.signal ? { signal: opts.signal } : {}) });
        const messageId = (await messageIdOf()) || info.messageId;
        log.debug("sent", { messageId, accepted: info.accepted.length, attempt });
        return {
          transport: name,
          messageId,
          accepted: info.accepted.map(addressOf),
          rejected: info.rejected.map(addressOf),
        };
      } catch (error) {
        const stop = unsendable();
        if (stop) throw stop.error;
        const raw = error as SmtpLikeError;
        if (!renewed && isTokenRefusal(raw)) {
          // The cached token may be revoked or rotated: one more try with a fresh one (not a retry).
          renewed = true;
          renewNext = true;
          attempt--;
          log.info("Exchange refused the token; retrying once with a fresh one");
          continue;
        }
        const mapped = toSendError(error, failure());
        if (mapped.requestSent !== false) earlier = mapped;
        if (!mapped.retryable || opts.signal?.aborted) throw mapped;
        if (uncertainSends === "report" && mapped.requestSent !== false) {
          throw maybeSent(mapped, await messageIdOf());
        }
        if (attempt >= retry.attempts) throw mapped;
        const wait = backoffDelay(attempt, retry);
        log.warn(`send failed (${mapped.code}); retry ${attempt + 1} of ${retry.attempts} in ${wait} ms`, {
          serverCode: mapped.serverCode,
        });
        await sleep(wait, opts.signal).catch((reason: unknown) => {
          throw abortedAfter(reason);
        });
      } finally {
        release();
      }
    }
  }

  async function verify(opts: OperationOptions = {}): Promise<VerifyReport> {
    assertOpen();
    const checks: VerifyCheck[] = [];
    const report = () => ({ transport: name, ok: checks.length === 3 && checks.every((c) => c.ok), checks });
    const step = (check: Omit<VerifyCheck, "ok" | "error">, error?: unknown) => {
      checks.push(
        error === undefined
          ? { ...check, ok: true }
          : { ...check, ok: false, error: toM365Error(error, failure()) },
      );
    };
    let probe: SmtpProbe | undefined;
    const probeOptions = { host, port, ca: options.ca, timeoutMs, signal: opts.signal };
    const connectCheck = { name: "connect", detail: `${host}:${port} STARTTLS` };
    const authCheck = { name: "SMTP AUTH", detail: `AUTH XOAUTH2 user=${mailbox}`, permission: "SMTP.Send" };
    try {
      probe = await SmtpProbe.open(probeOptions);
      step(connectCheck);
      try {
        await probe.auth(mailbox, (await getToken(false, opts.signal)).token);
      } catch (error) {
        if (!isTokenRefusal(error as SmtpLikeError)) throw error;
        // As for send: a refused (possibly revoked) cached token gets one fresh try, on a new session.
        probe.close();
        probe = await SmtpProbe.open(probeOptions);
        await probe.auth(mailbox, (await getToken(true, opts.signal)).token);
      }
      step(authCheck);
    } catch (error) {
      step(checks.length === 0 ? connectCheck : authCheck, error);
      probe?.close();
      return report();
    }
    // Exchange can accept AUTH and refuse the next command: run one.
    const mailCheck = { name: "MAIL FROM", detail: `MAIL FROM:<${mailbox}> then RSET` };
    try {
      await probe.expect(`MAIL FROM:<${mailbox}>`, /^250/, "EENVELOPE", "MAIL FROM");
      await probe.expect("RSET", /^250/, "EPROTOCOL", "RSET");
      step(mailCheck);
    } catch (error) {
      step(mailCheck, error);
    } finally {
      await probe.quit();
    }
    return report();
  }

  return {
    kind: "transport",
    name,
    contractVersion: CONTRACT_VERSION,
    capabilities: { send: true, read: false, watch: false, folders: false, calendar: false },
    mailbox,
    send,
    relay,
    verify,
    async close() {
      if (closed) return;
      closed = true;
      pool.close();
    },
  } satisfies SmtpTransport;
}

/** A message's bytes as a stream that ends when they arrive, or fails with the reason they never will. */
function arrivingBytes(built: Promise<{ mail: SendMailOptions }>): Readable {
  const stream = new Readable({ read() {} });
  built.then(
    ({ mail }) => {
      stream.push(mail.raw as Buffer);
      stream.push(null);
    },
    (error: unknown) => stream.destroy(error instanceof Error ? error : new Error(String(error))),
  );
  return stream;
}

function addressOf(entry: string | { address: string }): string {
  return typeof entry === "string" ? entry : entry.address;
}

/** `uncertainSends: "report"`: the failure, said as what it means for the message. Not retryable: a blind retry may send it twice. */
function maybeSent(error: M365MailError, messageId: string): M365MailError {
  return new M365MailError(error.code, `${error.message}; the message may have been sent`, {
    source: SOURCE,
    cause: error,
    retryable: false,
    ...(error.serverCode ? { serverCode: error.serverCode } : {}),
    hint: `Exchange may have taken it before the connection ended: look for ${messageId || "its Message-ID"} in Sent Items before sending it again.`,
  });
}

function configError(message: string, hint: string): M365MailError {
  return new M365MailError("CONFIG_INVALID", message, { source: SOURCE, hint });
}
