import {
  type AccessToken,
  CLOUDS,
  CONTRACT_VERSION,
  isM365MailError,
  type Logger,
  M365MailError,
  type Message,
  type MessageQuery,
  type MessageSummary,
  notSupported,
  type OperationOptions,
  registerSecret,
  safeLogger,
  type TokenProvider,
  type Transport,
  type TransportCapabilities,
  type VerifyCheck,
  type VerifyReport,
} from "@m365-mail/core";
import { explainFirstCommandFailure, explainPop3AuthFailure, POP_PERMISSION } from "./pop3-auth-failure.js";
import { connectPop3, type Pop3Client, type Pop3Security } from "./pop3-client.js";
import { SOURCE } from "./pop3-errors.js";
import { messageFromSource, POP3_FOLDER, summaryFromSource } from "./pop3-message.js";

export interface Pop3TransportOptions {
  /** Any TokenProvider (e.g. `ropcTokenProvider`); asked for the "outlook" resource on every sign-in. */
  auth: TokenProvider;
  /** @default auth.cloud.pop3.host, else "outlook.office365.com" */
  host?: string;
  /** @default auth.cloud.pop3.port (995) with tls "implicit"; 110 with tls "starttls" */
  port?: number;
  /** @default "implicit" */
  tls?: Pop3Security;
  /** Extra CA certificate(s) to trust (PEM), e.g. the emulator's CA. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** TLS server name. @default host (unless it is an IP address) */
  servername?: string;
  /** Shared mailbox address to open (`user=` of XOAUTH2); the token stays the signed-in user's. @default auth.username */
  mailbox?: string;
  /** Delete each message after `getMessage` has read and parsed it (DELE, committed by QUIT). @default false */
  deleteAfterRead?: boolean;
  /** Messages bigger than this are refused (MESSAGE_TOO_LARGE) before download. @default 52428800 (50 MB) */
  maxMessageBytes?: number;
  /** Idle limit for connecting and for each command, in ms. @default 30000 */
  timeoutMs?: number;
  /** Passed through core's safeLogger. */
  logger?: Logger;
  /** Registry name; set it to register a second POP3 transport. @default "pop3" */
  name?: string;
}

/** The POP3 transport: read-only access to the Inbox (list, get, delete). */
export interface Pop3Transport extends Transport {
  readonly capabilities: TransportCapabilities & { read: true; send: false };
  /** Where and as whom it connects, after defaults (for diagnostics). */
  readonly endpoint: {
    readonly host: string;
    readonly port: number;
    readonly tls: Pop3Security;
    readonly mailbox: string;
  };
  listMessages(query?: MessageQuery, options?: OperationOptions): AsyncIterable<MessageSummary>;
  getMessage(id: string, options?: OperationOptions & { folder?: string }): Promise<Message>;
  deleteMessage(id: string, options?: OperationOptions & { folder?: string }): Promise<void>;
  /** POP3 cannot send, list folders, flag, move, watch or read calendars: these throw NOT_SUPPORTED. */
  send: NonNullable<Transport["send"]>;
  listFolders: NonNullable<Transport["listFolders"]>;
  markRead: NonNullable<Transport["markRead"]>;
  moveMessage: NonNullable<Transport["moveMessage"]>;
  watch: NonNullable<Transport["watch"]>;
  listEvents: NonNullable<Transport["listEvents"]>;
}

declare module "@m365-mail/core" {
  interface TransportRegistry {
    pop3: Pop3Transport;
  }
}

const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
/** How far out of order two arrival times may be (clocks of different Exchange servers) before `since` stops a listing. */
const SINCE_SLACK_MS = 5 * 60_000;

/** One authenticated connection and what it knows of the maildrop (fixed for the session by POP3). */
interface Session {
  readonly client: Pop3Client;
  /** Messages in maildrop order (oldest first). */
  readonly messages: readonly { number: number; uid: string; size: number }[];
  readonly byUid: ReadonlyMap<string, { number: number; size: number }>;
  readonly deleted: Set<number>;
}

interface SessionEntry {
  readonly ready: Promise<Session>;
  session?: Session;
  /** Operations using the session; the last one to finish ends it. */
  users: number;
}

export function pop3Transport(options: Pop3TransportOptions): Pop3Transport {
  const { auth } = options;
  if (auth?.kind !== "token-provider") {
    throw new M365MailError("CONFIG_INVALID", "pop3Transport needs `auth`, a TokenProvider", {
      source: SOURCE,
      hint: "Pass auth: ropcTokenProvider({ tenantId, clientId, username, password }).",
    });
  }
  const security = options.tls ?? "implicit";
  if (security !== "implicit" && security !== "starttls") {
    throw new M365MailError(
      "CONFIG_INVALID",
      `tls must be "implicit" or "starttls", got "${String(security)}"`,
      {
        source: SOURCE,
        hint: 'Use tls: "implicit" (port 995, Exchange Online) or "starttls" (port 110 with STLS).',
      },
    );
  }
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!(maxMessageBytes > 0)) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `maxMessageBytes must be a positive number, got ${maxMessageBytes}`,
      {
        source: SOURCE,
      },
    );
  }
  const cloud = auth.cloud ?? CLOUDS.global;
  const host = options.host ?? cloud.pop3.host;
  const port = options.port ?? (security === "implicit" ? cloud.pop3.port : 110);
  const mailbox = options.mailbox ?? auth.username;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const log = safeLogger(options.logger, SOURCE);
  const name = options.name ?? "pop3";

  const token = async (forceRefresh: boolean, signal?: AbortSignal): Promise<AccessToken> => {
    const result = await auth.getAccessToken("outlook", { forceRefresh, ...(signal ? { signal } : {}) });
    registerSecret(result.token, { rotating: true });
    return result;
  };

  const connect = (signal?: AbortSignal) =>
    connectPop3({
      host,
      port,
      tls: security,
      timeoutMs,
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.servername ? { servername: options.servername } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(signal ? { signal } : {}),
    });

  interface Progress {
    token: boolean;
    connected: boolean;
    authenticated: boolean;
  }

  /** Connects and signs in; after a refused sign-in, once more with a fresh token, then a typed error. */
  const openAuthenticated = async (signal?: AbortSignal, progress?: Progress): Promise<Pop3Client> => {
    for (let attempt = 0; ; attempt++) {
      const access = await token(attempt > 0, signal);
      if (progress) progress.token = true;
      const client = await connect(signal);
      if (progress) progress.connected = true;
      try {
        await client.authXOAuth2(mailbox, access.token);
        if (progress) progress.authenticated = true;
        return client;
      } catch (error) {
        client.destroy();
        if (!isM365MailError(error, "AUTH_FAILED")) throw error;
        const explained = explainPop3AuthFailure({
          token: access.token,
          user: mailbox,
          signedInUser: auth.username,
          cloud,
          cause: error,
        });
        // A fresh token cannot change the audience or the granted scopes: retry only what a refresh can fix.
        // Throttled: one more sign-in would only prolong it.
        const refreshable =
          explained.code !== "WRONG_SCOPE" &&
          explained.code !== "CONSENT_REQUIRED" &&
          explained.code !== "THROTTLED";
        if (attempt > 0 || !refreshable) throw explained;
        log.debug("sign-in refused; retrying once with a refreshed token");
      }
    }
  };

  // One session at a time, shared by overlapping operations: POP3 locks the maildrop, so a second
  // connection of ours (getMessage inside a listMessages loop) would be refused or would wait.
  let current: SessionEntry | undefined;

  const openSession = async (signal?: AbortSignal): Promise<Session> => {
    // The session outlives the operation that opened it: its signal may cancel the opening, not the session.
    const opening = new AbortController();
    const forward = () => opening.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    let client: Pop3Client | undefined;
    try {
      client = await openAuthenticated(opening.signal);
      const uids = await client.uidl().catch((error: unknown) => {
        throw explainFirstCommandFailure(error, mailbox, auth.username);
      });
      const sizes = new Map((await client.list()).map((entry) => [entry.number, entry.size]));
      const messages = uids.map(({ number, uid }) => ({ number, uid, size: sizes.get(number) ?? 0 }));
      return {
        client,
        messages,
        byUid: new Map(messages.map((m) => [m.uid, { number: m.number, size: m.size }])),
        deleted: new Set(),
      };
    } catch (error) {
      client?.destroy();
      throw error;
    } finally {
      signal?.removeEventListener("abort", forward);
    }
  };

  const acquire = async (signal?: AbortSignal): Promise<Session> => {
    if (signal?.aborted) throw abortError(signal);
    if (current?.session?.client.closed) current = undefined;
    if (!current) {
      const entry: SessionEntry = { ready: openSession(signal), users: 0 };
      entry.ready.then(
        (session) => {
          entry.session = session;
        },
        () => {
          if (current === entry) current = undefined;
        },
      );
      current = entry;
    }
    const entry = current;
    entry.users++;
    try {
      return await entry.ready;
    } catch (error) {
      entry.users--;
      throw error;
    }
  };

  /** POP3 cannot cancel a command: aborting an operation ends its connection. Returns the un-listen. */
  const abortOn = (signal: AbortSignal | undefined, session: Session): (() => void) => {
    if (!signal) return () => {};
    const listener = () => session.client.destroy(abortError(signal));
    signal.addEventListener("abort", listener, { once: true });
    return () => signal.removeEventListener("abort", listener);
  };

  /** The last user ends the session with QUIT, which commits deletions; `quiet` hides QUIT errors. */
  const release = async (session: Session, quiet: boolean): Promise<void> => {
    const entry = current?.session === session ? current : undefined;
    const users = entry ? --entry.users : 0;
    if (users > 0) return;
    if (entry && current === entry) current = undefined;
    if (session.client.closed) {
      if (!quiet && session.deleted.size > 0) {
        throw new M365MailError(
          "CONNECTION_FAILED",
          "the connection closed before QUIT: deleted messages were kept",
          {
            source: SOURCE,
            hint: "Retry; POP3 deletes only when the session ends with QUIT.",
          },
        );
      }
      return;
    }
    if (quiet) await session.client.close();
    else await session.client.quit();
  };

  /** Runs `task` on a session and releases it; an error of `task` wins over one of QUIT. */
  const withSession = async <T>(
    signal: AbortSignal | undefined,
    task: (session: Session) => Promise<T>,
  ): Promise<T> => {
    const session = await acquire(signal);
    const unlisten = abortOn(signal, session);
    let result: T;
    try {
      result = await task(session);
    } catch (error) {
      unlisten();
      await release(session, true);
      throw error;
    }
    unlisten();
    await release(session, false);
    return result;
  };

  const find = (session: Session, id: string) => {
    const entry = session.byUid.get(id);
    if (!entry || session.deleted.has(entry.number)) {
      throw new M365MailError("NOT_FOUND", `no message with POP3 id (UIDL) "${id}" in ${mailbox}`, {
        source: SOURCE,
        hint: "The message was deleted, or it arrived after this POP3 session began; list the messages again.",
      });
    }
    return entry;
  };

  const checkFolder = (folder: string | undefined) => {
    if (folder !== undefined && folder.toLowerCase() !== POP3_FOLDER) {
      throw notSupported(name, `folder "${folder}" (POP3 reaches only the Inbox)`);
    }
  };

  const transport: Pop3Transport = {
    kind: "transport",
    name,
    contractVersion: CONTRACT_VERSION,
    capabilities: { send: false, read: true, watch: false, folders: false, calendar: false },
    endpoint: { host, port, tls: security, mailbox },

    async verify(verifyOptions = {}): Promise<VerifyReport> {
      const progress: Progress = { token: false, connected: false, authenticated: false };
      const checks: VerifyCheck[] = [];
      const where = `${host}:${port}${security === "starttls" ? " (STLS)" : " (TLS)"}`;
      let client: Pop3Client | undefined;
      try {
        client = await openAuthenticated(verifyOptions.signal, progress);
        const stat = await client.stat().catch((error: unknown) => {
          throw explainFirstCommandFailure(error, mailbox, auth.username);
        });
        checks.push(
          { name: "sign-in", ok: true, detail: 'access token for the "outlook" resource' },
          { name: "connect", ok: true, detail: `connected to ${where}` },
          { name: "POP3 AUTH", ok: true, detail: `AUTH XOAUTH2 as ${mailbox}`, permission: POP_PERMISSION },
          {
            name: "mailbox",
            ok: true,
            detail: `STAT: ${stat.count} message(s), ${stat.size} bytes`,
            permission: POP_PERMISSION,
          },
        );
      } catch (caught) {
        const error = isM365MailError(caught)
          ? caught
          : new M365MailError("SERVER_ERROR", "verify failed", { source: SOURCE, cause: caught });
        const steps: [string, string, string | undefined, boolean][] = [
          ["sign-in", 'access token for the "outlook" resource', undefined, progress.token],
          ["connect", `connect to ${where}`, undefined, progress.connected],
          ["POP3 AUTH", `AUTH XOAUTH2 as ${mailbox}`, POP_PERMISSION, progress.authenticated],
          ["mailbox", "STAT", POP_PERMISSION, false],
        ];
        for (const [checkName, detail, permission, done] of steps) {
          const base = { name: checkName, detail, ...(permission ? { permission } : {}) };
          if (done) checks.push({ ...base, ok: true });
          else {
            checks.push({ ...base, ok: false, error });
            break;
          }
        }
      } finally {
        await client?.close();
      }
      return { transport: name, ok: checks.every((c) => c.ok), checks };
    },

    async *listMessages(query: MessageQuery = {}, listOptions: OperationOptions = {}) {
      checkFolder(query.folder);
      if (query.unreadOnly) {
        throw notSupported(name, "unreadOnly (POP3 has no read/unread state)");
      }
      const limit = query.limit ?? Number.POSITIVE_INFINITY;
      if (limit <= 0) return;
      const session = await acquire(listOptions.signal);
      const unlisten = abortOn(listOptions.signal, session);
      let failed = false;
      try {
        let yielded = 0;
        // Newest first, as Graph and IMAP list: POP3 numbers messages in arrival order (Exchange
        // numbers the maildrop, and its UIDL list, by the time each message reached the Inbox).
        // So with `since`, the first message received before it ends the listing: every message
        // after it in this walk arrived earlier still, and fetching their headers would be wasted
        // round trips (one TOP per message, the whole Inbox on a large mailbox). Received times
        // come from servers whose clocks may differ by a little, hence SINCE_SLACK_MS.
        for (const entry of [...session.messages].reverse()) {
          if (session.deleted.has(entry.number)) continue;
          const head = await session.client.top(entry.number, 0);
          const summary = await summaryFromSource(head, entry.uid, entry.size);
          if (query.since) {
            const at = summary.receivedAt;
            if (at && at.getTime() < query.since.getTime() - SINCE_SLACK_MS) break;
            if (!(at && at >= query.since)) continue;
          }
          yield summary;
          if (++yielded >= limit) break;
        }
      } catch (error) {
        failed = true;
        throw error;
      } finally {
        unlisten();
        await release(session, failed);
      }
    },

    async getMessage(id, getOptions = {}) {
      checkFolder(getOptions.folder);
      return withSession(getOptions.signal, async (session) => {
        const entry = find(session, id);
        const raw = await session.client.retr(entry.number, { maxBytes: maxMessageBytes });
        const message = await messageFromSource(raw, id, entry.size);
        if (options.deleteAfterRead) {
          await session.client.dele(entry.number);
          session.deleted.add(entry.number);
        }
        return message;
      });
    },

    async deleteMessage(id, deleteOptions = {}) {
      checkFolder(deleteOptions.folder);
      await withSession(deleteOptions.signal, async (session) => {
        const entry = find(session, id);
        await session.client.dele(entry.number);
        session.deleted.add(entry.number);
      });
    },

    async send() {
      throw notSupported(name, "send");
    },
    async listFolders() {
      throw notSupported(name, "listFolders");
    },
    async markRead() {
      throw notSupported(name, "markRead");
    },
    async moveMessage() {
      throw notSupported(name, "moveMessage");
    },
    // Iterables fail on the first next(), like listMessages, not when called.
    // biome-ignore lint/correctness/useYield: it only throws
    async *watch() {
      throw notSupported(name, "watch");
    },
    // biome-ignore lint/correctness/useYield: it only throws
    async *listEvents() {
      throw notSupported(name, "listEvents");
    },

    async close() {
      const entry = current;
      current = undefined;
      const session = await entry?.ready.catch(() => undefined);
      await session?.client.close();
    },
  };
  return transport;
}

function abortError(signal: AbortSignal): M365MailError {
  return new M365MailError("ABORTED", "the POP3 operation was aborted", {
    source: SOURCE,
    cause: signal.reason,
  });
}
