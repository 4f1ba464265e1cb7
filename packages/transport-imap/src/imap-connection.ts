import {
  type AccessToken,
  type CloudPreset,
  type GetTokenOptions,
  type Logger,
  M365MailError,
  registerSecret,
  type TokenProvider,
} from "@m365-mail/core";
import { explainAuthFailure } from "./auth-failure.js";
import { abortedError, isAuthenticationFailure, serverText, toImapError } from "./imap-errors.js";
import { type SaslMechanism, SaslPreferringImapFlow } from "./xoauth2-imap-flow.js";

/** Everything needed to open one authenticated IMAP connection. */
export interface ConnectionSettings {
  readonly auth: TokenProvider;
  readonly cloud: CloudPreset;
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
  /** `user=` of the SASL string: the signed-in user, or the shared mailbox. */
  readonly user: string;
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  readonly timeoutMs: number;
  readonly renewBeforeMs: number;
  readonly saslMechanism: SaslMechanism;
  readonly logger: Logger;
  /** Forward imapflow's own log lines (already redacted by `logger`). */
  readonly wireLog: boolean;
}

export interface ImapConnection {
  readonly client: SaslPreferringImapFlow;
  readonly token: AccessToken;
  /** Epoch ms at which this connection should be replaced by one with a fresh token. */
  readonly renewAt: number;
  /** True once the socket closed (BYE, drop, logout). */
  readonly closed: boolean;
  /** Reason text of the server's BYE, e.g. "Session invalidated - AccessTokenExpired". */
  readonly byeReason: string | undefined;
  /** Resolves when the connection closes; never rejects. */
  readonly whenClosed: Promise<void>;
  /** LOGOUT when possible, then close; never throws. */
  end(): Promise<void>;
}

export interface OpenOptions {
  signal?: AbortSignal;
  /** Start IDLE by itself after 15 s of quiet (keeps shared connections alive); off for watchers. */
  autoIdle: boolean;
  purpose: string;
}

/**
 * When to replace a connection: `renewBefore` ahead of the token's expiry, but never earlier than half
 * of the token's remaining life (short-lived test tokens would otherwise cause a reconnect loop).
 */
export function renewalTime(expiresAt: Date, renewBeforeMs: number, now = Date.now()): number {
  const remaining = expiresAt.getTime() - now;
  const lead = Math.min(renewBeforeMs, Math.max(0, remaining) / 2);
  return Math.max(now + 1000, expiresAt.getTime() - lead);
}

function imapflowLogger(logger: Logger) {
  const forward =
    (level: keyof Logger) =>
    (entry: unknown): void => {
      if (!entry || typeof entry !== "object") return void logger[level](String(entry));
      const { msg, err, ...rest } = entry as Record<string, unknown>;
      logger[level](typeof msg === "string" ? msg : "imapflow", err === undefined ? rest : { ...rest, err });
    };
  return {
    trace: () => {},
    debug: forward("debug"),
    info: forward("debug"),
    // Every failure imapflow logs also reaches us as an error we raise or act on: keep its copy at debug.
    warn: forward("debug"),
    error: forward("debug"),
    fatal: forward("warn"),
  };
}

/** Runs `promise`, rejecting with ABORTED when the signal fires (and calling `onAbort` to clean up). */
export function withSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  operation: string,
  onAbort?: () => void,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    onAbort?.();
    promise.catch(() => {});
    return Promise.reject(abortedError(operation, signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort?.();
      reject(abortedError(operation, signal.reason));
    };
    signal.addEventListener("abort", abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", abort);
        reject(error);
      },
    );
  });
}

async function connectOnce(
  settings: ConnectionSettings,
  token: AccessToken,
  options: OpenOptions,
): Promise<ImapConnection> {
  const client = new SaslPreferringImapFlow({
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    doSTARTTLS: settings.secure ? undefined : true,
    auth: { user: settings.user, accessToken: token.token },
    tls: settings.ca ? { ca: settings.ca as string | Buffer | (string | Buffer)[] } : {},
    // imapflow formats every protocol line for a logger it is given; without logProtocol, give it none
    // (that halves the throughput of bulk FETCHes).
    logger: settings.wireLog ? imapflowLogger(settings.logger) : false,
    clientInfo: { name: "m365-mail" },
    disableAutoIdle: !options.autoIdle,
    // Exchange drops IDLE after about 30 minutes; restarting it every 10 keeps watchers alive.
    maxIdleTime: 10 * 60_000,
    connectionTimeout: settings.timeoutMs,
    greetingTimeout: settings.timeoutMs,
  });
  client.preferredMechanism = settings.saslMechanism;
  let closed = false;
  let resolveClosed!: () => void;
  const whenClosed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  // imapflow emits 'error' for socket failures; without a listener Node would crash the process.
  client.on("error", (error: unknown) => {
    settings.logger.debug(`${options.purpose}: connection error`, { error });
  });
  client.on("close", () => {
    closed = true;
    resolveClosed();
  });
  try {
    await withSignal(client.connect(), options.signal, `connect to ${settings.host}`, () => client.close());
  } catch (error) {
    client.close();
    throw error;
  }
  const connection: ImapConnection = {
    client,
    token,
    renewAt: renewalTime(token.expiresAt, settings.renewBeforeMs),
    get closed() {
      // After a BYE imapflow is in LOGOUT state before the socket actually closes.
      return closed || client.isClosed || client.state === client.states.LOGOUT;
    },
    get byeReason() {
      return client.byeReason;
    },
    whenClosed,
    async end() {
      if (closed) return;
      try {
        await Promise.race([client.logout(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      } catch {
        // LOGOUT on a dying connection fails; closing is all that matters.
      }
      client.close();
    },
  };
  return connection;
}

/** A token for the "outlook" resource; a provider's own M365MailError passes through unchanged. */
async function tokenFrom(settings: ConnectionSettings, options: GetTokenOptions): Promise<AccessToken> {
  let token: AccessToken;
  try {
    token = await settings.auth.getAccessToken("outlook", options);
  } catch (error) {
    if (error instanceof M365MailError) throw error;
    throw new M365MailError(
      "AUTH_FAILED",
      `the token provider "${settings.auth.name}" failed to hand out an Outlook token`,
      {
        source: "imap",
        cause: error,
        hint: 'See the cause; the token provider must return a token for the "outlook" resource (IMAP.AccessAsUser.All).',
      },
    );
  }
  if (!token?.token) {
    throw new M365MailError(
      "AUTH_FAILED",
      `the token provider "${settings.auth.name}" returned an empty access token`,
      {
        source: "imap",
        hint: "Check the token provider; with ROPC this means Entra ID answered without an access_token.",
      },
    );
  }
  registerSecret(token.token, { rotating: true });
  return token;
}

/**
 * Opens one authenticated connection with a token fresh from the provider. A refused sign-in is tried
 * once more with `forceRefresh` (the cached token may have been revoked or rotated); a second refusal is
 * explained from the token's claims (wrong audience, missing scope, IMAP off for the mailbox).
 */
export async function openConnection(
  settings: ConnectionSettings,
  options: OpenOptions,
): Promise<ImapConnection> {
  const operation = `connect to ${settings.host}:${settings.port} as ${settings.user}`;
  const context = { operation, host: settings.host, port: settings.port };
  let token = await tokenFrom(settings, { signal: options.signal });
  try {
    return await connectOnce(settings, token, options);
  } catch (error) {
    if (error instanceof M365MailError) throw error;
    if (!isAuthenticationFailure(error)) throw toImapError(error, context);
    settings.logger.info(`${options.purpose}: sign-in refused, retrying once with a refreshed token`, {
      server: serverText(error),
    });
  }
  token = await tokenFrom(settings, { forceRefresh: true, signal: options.signal });
  try {
    return await connectOnce(settings, token, options);
  } catch (error) {
    if (error instanceof M365MailError) throw error;
    if (!isAuthenticationFailure(error)) throw toImapError(error, context);
    const text = serverText(error);
    throw explainAuthFailure({
      token: token.token,
      user: settings.user,
      signedInUser: settings.auth.username,
      cloud: settings.cloud,
      cause: error,
      ...(text ? { serverText: text } : {}),
    });
  }
}
