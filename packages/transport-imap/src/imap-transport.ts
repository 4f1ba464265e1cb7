import {
  type AttachmentDownload,
  type AttachmentInfo,
  CONTRACT_VERSION,
  type Logger,
  M365MailError,
  type MailEvent,
  type MailFolder,
  type MessageQuery,
  type OperationOptions,
  resolveCloud,
  safeLogger,
  type TokenProvider,
  type Transport,
  type VerifyCheck,
  type VerifyReport,
} from "@m365-mail/core";
import type { FetchMessageObject, ImapFlow } from "imapflow";
import { attachmentParts } from "./attachment-parts.js";
import { findFolder, toMailFolder } from "./folders.js";
import { type ConnectionSettings, openConnection } from "./imap-connection.js";
import { isConnectionDrop, toImapError } from "./imap-errors.js";
import { HeldBatch, nextBatchSize } from "./listing-batches.js";
import { formatMessageId, type ImapMessageRef, parseMessageId, uidSet } from "./message-id.js";
import { type ImapMessage, parseMessage } from "./parse-message.js";
import { searchCriteria } from "./search-criteria.js";
import { SharedConnection } from "./shared-connection.js";
import {
  type ImapMessageSummary,
  summaryBuilder,
  summaryQuery,
  toSummary,
  type Writable,
} from "./summary.js";
import { stoppable, watchFolder } from "./watch.js";
import type { SaslMechanism } from "./xoauth2-imap-flow.js";

export interface ImapTransportOptions {
  /** Any TokenProvider; tokens are requested for the "outlook" resource on every new connection, never cached here. */
  auth: TokenProvider;
  /** @default auth.cloud?.imap.host, else "outlook.office365.com" */
  host?: string;
  /** @default auth.cloud?.imap.port, else 993 */
  port?: number;
  /** Implicit TLS. `false` means plain connect + required STARTTLS. @default true */
  secure?: boolean;
  /** A shared mailbox to open (`user=` in XOAUTH2) with the signed-in delegate's token. @default auth.username */
  mailbox?: string;
  /** Extra CA certificate(s) to trust, PEM (e.g. the emulator's CA). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Connect/greeting timeout and the deadline for one command or FETCH batch. @default 60000 */
  timeoutMs?: number;
  /**
   * `getMessage` refuses (MESSAGE_TOO_LARGE) a message bigger than this, checked with RFC822.SIZE before
   * anything is downloaded: the whole message is held in memory to parse it. @default 52428800 (50 MB)
   */
  maxMessageBytes?: number;
  /**
   * Deadline for one `getMessage`, connecting and downloading included (TIMEOUT after it). Separate from
   * `timeoutMs` because a large message takes longer than one command should. @default 300000
   */
  messageTimeoutMs?: number;
  /** UIDs per FETCH when listing or watching. @default 200 */
  fetchBatchSize?: number;
  /** Replace a connection this long before its token expires. @default 300 */
  renewBeforeExpirySeconds?: number;
  /** SASL mechanism when the server offers both (Exchange documents XOAUTH2). @default "XOAUTH2" */
  saslMechanism?: SaslMechanism;
  /** Registered name, to use two IMAP transports (own and shared mailbox) in one mailbox. @default "imap" */
  name?: string;
  /** Receives redacted log lines. */
  logger?: Logger;
  /** Also log imapflow's protocol lines at debug level (redacted). @default false */
  logProtocol?: boolean;
}

export interface ImapMessageQuery extends MessageQuery {
  /** Fetch each message's RFC 5322 source with its summary (`summary.source`). @default false */
  includeSource?: boolean;
}

export interface ImapDeleteOptions extends OperationOptions {
  /**
   * Expunge instead of moving to Deleted Items. Messages already in Deleted Items are always expunged.
   * @default false
   */
  permanent?: boolean;
}

export interface ImapTransport extends Transport {
  readonly name: string;
  readonly capabilities: {
    send: false;
    read: true;
    watch: true;
    folders: true;
    calendar: false;
    search: true;
    manage: true;
    attachments: true;
  };
  listFolders(options?: OperationOptions): Promise<MailFolder[]>;
  listMessages(query?: ImapMessageQuery, options?: OperationOptions): AsyncIterable<ImapMessageSummary>;
  getMessage(id: string, options?: OperationOptions): Promise<ImapMessage>;
  /** The message's RFC 5322 source as a stream of chunks (holds the shared connection until consumed). */
  fetchSource(id: string, options?: OperationOptions): AsyncIterable<Uint8Array>;
  markRead(id: string, read: boolean, options?: OperationOptions): Promise<void>;
  /** Sets or clears `\\Flagged` (Outlook's follow-up flag). */
  setFlag(id: string, flagged: boolean, options?: OperationOptions): Promise<void>;
  /** Attachments from BODYSTRUCTURE; ids are part numbers ("2", "1.2"). */
  listAttachments(id: string, options?: OperationOptions): Promise<AttachmentInfo[]>;
  /** One part, decoded, streamed; the shared connection is held until `content` is consumed or abandoned. */
  downloadAttachment(
    id: string,
    attachmentId: string,
    options?: OperationOptions,
  ): Promise<AttachmentDownload>;
  /** MOVE to another folder; returns the message's new id (from COPYUID). */
  moveMessage(id: string, toFolder: string, options?: OperationOptions): Promise<string>;
  /** Like Outlook: moves to Deleted Items; expunges when already there or with `permanent`. */
  deleteMessage(id: string, options?: ImapDeleteOptions): Promise<void>;
  /** `deleteMessage` without `permanent`, answering the id in Deleted Items (undefined when expunged). */
  trashMessage(id: string, options?: OperationOptions): Promise<string | undefined>;
  watch(query?: MessageQuery, options?: OperationOptions): AsyncIterable<MailEvent>;
  close(): Promise<void>;
}

declare module "@m365-mail/core" {
  interface TransportRegistry {
    imap: ImapTransport;
  }
}

const FOLDER_CACHE_MS = 5 * 60_000;
const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;

function invalidOption(message: string, hint: string): M365MailError {
  return new M365MailError("CONFIG_INVALID", message, { source: "imap", hint });
}

/** Reads, watches and files the mail of one Microsoft 365 mailbox over IMAP with XOAUTH2 (imapflow). */
export function imapTransport(options: ImapTransportOptions): ImapTransport {
  const { auth } = options;
  if (auth?.kind !== "token-provider") {
    throw invalidOption(
      "imapTransport needs `auth`, a TokenProvider",
      "Pass auth: ropcTokenProvider({ ... }).",
    );
  }
  const cloud = resolveCloud(auth.cloud);
  const fetchBatchSize = options.fetchBatchSize ?? 200;
  if (!Number.isInteger(fetchBatchSize) || fetchBatchSize < 1) {
    throw invalidOption(`fetchBatchSize must be a positive integer, got ${fetchBatchSize}`, "Use e.g. 200.");
  }
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (!(timeoutMs > 0))
    throw invalidOption(`timeoutMs must be positive, got ${timeoutMs}`, "Use e.g. 60000.");
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!(maxMessageBytes > 0))
    throw invalidOption(
      `maxMessageBytes must be positive, got ${maxMessageBytes}`,
      "Use e.g. 52428800 (50 MB).",
    );
  const messageTimeoutMs = options.messageTimeoutMs ?? 300_000;
  if (!(messageTimeoutMs > 0))
    throw invalidOption(`messageTimeoutMs must be positive, got ${messageTimeoutMs}`, "Use e.g. 300000.");
  const name = options.name ?? "imap";
  const logger = safeLogger(options.logger, name);
  const settings: ConnectionSettings = {
    auth,
    cloud,
    host: options.host ?? cloud.imap.host,
    port: options.port ?? cloud.imap.port,
    secure: options.secure ?? true,
    user: options.mailbox ?? auth.username,
    ...(options.ca ? { ca: options.ca } : {}),
    timeoutMs,
    renewBeforeMs: (options.renewBeforeExpirySeconds ?? 300) * 1000,
    saslMechanism: options.saslMechanism ?? "XOAUTH2",
    logger,
    wireLog: options.logProtocol ?? false,
  };
  const shared = new SharedConnection(settings);
  const closing = new AbortController();
  const watchers = new Set<Promise<unknown>>();
  let folderCache: { at: number; folders: MailFolder[] } | undefined;
  const where = { host: settings.host, port: settings.port };

  const loadFolders = async (withStatus: boolean, signal?: AbortSignal): Promise<MailFolder[]> => {
    const entries = await shared.run(
      "LIST",
      (client) => client.list(withStatus ? { statusQuery: { messages: true, unseen: true } } : {}),
      { signal, retryOnDrop: true },
    );
    const folders = entries.map(toMailFolder);
    folderCache = { at: Date.now(), folders };
    return folders;
  };

  const resolveFolder = async (wanted: string | undefined, signal?: AbortSignal): Promise<string> => {
    const target = wanted ?? "inbox";
    if (target.toUpperCase() === "INBOX") return "INBOX";
    const cached =
      folderCache && Date.now() - folderCache.at < FOLDER_CACHE_MS ? folderCache.folders : undefined;
    let found = cached ? findFolder(cached, target) : undefined;
    if (!found) found = findFolder(await loadFolders(false, signal), target);
    if (!found) {
      const known = (folderCache?.folders ?? []).map((f) => f.id).join(", ");
      throw new M365MailError(
        "NOT_FOUND",
        `folder "${target}" does not exist in ${settings.user} (folders: ${known})`,
        {
          source: "imap",
          hint: "Use a folder path from listFolders() or a well-known name: inbox, sent, drafts, trash, junk, archive.",
        },
      );
    }
    return found.id;
  };

  /** Selects the message's folder and checks that its UIDs still mean what the id says. */
  const lockMessage = async (client: ImapFlow, ref: ImapMessageRef, id: string) => {
    const lock = await client.getMailboxLock(ref.folder);
    const mailbox = client.mailbox;
    if (!mailbox || mailbox.uidValidity !== ref.uidValidity) {
      lock.release();
      throw new M365MailError(
        "NOT_FOUND",
        `message ${id} no longer exists: folder ${ref.folder} was renumbered`,
        {
          source: "imap",
          hint: "List the folder again to get current ids (the server changed its UIDVALIDITY).",
        },
      );
    }
    return lock;
  };

  const checkSize = (id: string, size: number) => {
    if (size <= maxMessageBytes) return;
    throw new M365MailError(
      "MESSAGE_TOO_LARGE",
      `message ${id} is ${size} bytes, over maxMessageBytes (${maxMessageBytes})`,
      {
        source: "imap",
        hint: "Raise `maxMessageBytes` (default 50 MB), or stream the source with fetchSource() instead of getMessage().",
      },
    );
  };

  const notFound = (id: string) =>
    new M365MailError("NOT_FOUND", `message ${id} does not exist (deleted or moved)`, {
      source: "imap",
      hint: "List the folder again to get current ids.",
    });

  async function* listMessages(
    query: ImapMessageQuery = {},
    opts: OperationOptions = {},
  ): AsyncGenerator<ImapMessageSummary> {
    const folder = await resolveFolder(query.folder, opts.signal);
    const includeSource = query.includeSource ?? false;
    const { uids, uidValidity } = await shared.run(
      `SEARCH ${folder}`,
      async (client) => {
        const alreadySelected = client.mailbox && client.mailbox.path === folder;
        const lock = await client.getMailboxLock(folder);
        try {
          // A folder selected earlier may not show mail that arrived since (Dovecot rescans a Maildir
          // only on NOOP/CHECK or after a while); NOOP asks the server to report it now.
          if (alreadySelected) await client.noop();
          const found = await client.search(searchCriteria(query), { uid: true });
          // A BYE right after the answer (a token expiry kick) clears the selected mailbox: that is a
          // dropped connection to retry, not an empty folder.
          if (!client.mailbox) {
            throw Object.assign(new Error("connection closed during SEARCH"), { code: "EConnectionClosed" });
          }
          if (!found) {
            throw new M365MailError("SERVER_ERROR", `the server refused SEARCH in ${folder}`, {
              source: "imap",
              hint: "Try again later; if it persists, the folder may be damaged on the server.",
            });
          }
          return { uids: found, uidValidity: client.mailbox.uidValidity };
        } finally {
          lock.release();
        }
      },
      { signal: opts.signal, retryOnDrop: true },
    );
    // Newest first, like Outlook and Graph.
    uids.sort((a, b) => b - a);
    // Without a time filter every UID found is yielded: fetch no more than the limit asks for.
    if (query.limit !== undefined && !query.since)
      uids.length = Math.min(uids.length, Math.max(0, query.limit));
    const fetchQuery = summaryQuery(includeSource);
    const summarize = summaryBuilder(folder, uidValidity);
    const scratch = {} as Writable<FetchMessageObject>;
    // A batch is held until complete (see HeldBatch); each summary is built as it is yielded.
    const fetchBatch = (wanted: number[]) =>
      shared.run(
        `FETCH ${folder}`,
        async (client) => {
          const lock = await client.getMailboxLock(folder);
          try {
            if ((client.mailbox as { uidValidity: bigint }).uidValidity !== uidValidity) {
              throw new M365MailError(
                "SERVER_ERROR",
                `folder ${folder} was renumbered while it was being listed`,
                {
                  source: "imap",
                  hint: "List the folder again.",
                },
              );
            }
            const batch = new HeldBatch();
            for await (const message of client.fetch(uidSet(wanted), fetchQuery, { uid: true })) {
              batch.push(message);
            }
            return batch;
          } finally {
            lock.release();
          }
        },
        { signal: opts.signal, retryOnDrop: true },
      );
    // A page size the caller chose is kept; otherwise batches grow (see nextBatchSize).
    let batchSize = query.pageSize ?? fetchBatchSize;
    let taken = 0;
    let fetchedCount = 0;
    let fetchedBytes = 0;
    const fetchNext = () => {
      if (taken >= uids.length) return undefined;
      const wanted = uids.slice(taken, taken + batchSize);
      taken += wanted.length;
      return fetchBatch(wanted);
    };
    let yielded = 0;
    // One batch ahead: the next FETCH is on the wire while the caller works through this one.
    let next = fetchNext();
    try {
      while (next) {
        const batch = await next;
        if (query.pageSize === undefined) {
          for (let i = 0; i < batch.length; i++) fetchedBytes += batch.size(i) ?? 0;
          fetchedCount += batch.length;
          batchSize = nextBatchSize(
            batchSize,
            includeSource && fetchedCount > 0 ? fetchedBytes / fetchedCount : undefined,
          );
        }
        next = fetchNext();
        // Servers answer in ascending order; sort only when this one did not.
        if (!batch.ascending()) batch.sortByUid();
        for (let i = batch.length - 1; i >= 0; i--) {
          const summary = summarize(batch.read(i, scratch));
          // IMAP SINCE compares dates only; apply the exact time here.
          if (query.since && summary.receivedAt && summary.receivedAt < query.since) continue;
          yield summary;
          if (query.limit !== undefined && ++yielded >= query.limit) return;
        }
      }
    } finally {
      // The caller stopped early: let the FETCH already sent finish quietly.
      next?.catch(() => {});
    }
  }

  async function* fetchSource(id: string, opts: OperationOptions = {}): AsyncGenerator<Uint8Array> {
    const ref = parseMessageId(id);
    const lease = await shared.lease(opts.signal);
    let lock: { release(): void } | undefined;
    try {
      lock = await lockMessage(lease.client, ref, id);
      const download = await lease.client.download(String(ref.uid), undefined, { uid: true });
      if (!download.content) throw notFound(id);
      for await (const chunk of download.content) {
        if (opts.signal?.aborted) {
          download.content.destroy();
          lease.discard();
          throw new M365MailError("ABORTED", `fetchSource ${id} was aborted`, { source: "imap" });
        }
        yield chunk as Buffer;
      }
    } catch (error) {
      if (isConnectionDrop(error)) lease.discard();
      throw toImapError(error, { operation: `FETCH ${id}`, ...where });
    } finally {
      lock?.release();
      lease.release();
    }
  }

  const transport: ImapTransport = {
    kind: "transport",
    name,
    contractVersion: CONTRACT_VERSION,
    capabilities: {
      send: false,
      read: true,
      watch: true,
      folders: true,
      calendar: false,
      search: true,
      manage: true,
      attachments: true,
    },

    async verify(opts = {}): Promise<VerifyReport> {
      const checks: VerifyCheck[] = [];
      const fail = (error: unknown, operation: string) => toImapError(error, { operation, ...where });
      let connection: Awaited<ReturnType<typeof openConnection>> | undefined;
      try {
        connection = await openConnection(settings, {
          autoIdle: false,
          signal: opts.signal,
          purpose: "verify",
        });
        checks.push({
          name: "IMAP sign-in",
          ok: true,
          permission: "IMAP.AccessAsUser.All",
          detail: `AUTHENTICATE ${connection.client.usedMechanism ?? "XOAUTH2"} as ${settings.user} at ${settings.host}:${settings.port}`,
        });
      } catch (error) {
        checks.push({
          name: "IMAP sign-in",
          ok: false,
          permission: "IMAP.AccessAsUser.All",
          detail: `AUTHENTICATE XOAUTH2 as ${settings.user} at ${settings.host}:${settings.port}`,
          error: fail(error, "sign-in"),
        });
        return { transport: name, ok: false, checks };
      }
      try {
        // Exchange can accept AUTHENTICATE and fail the next command: run a real one.
        const box = await connection.client.mailboxOpen("INBOX", { readOnly: true });
        checks.push({ name: "read INBOX", ok: true, detail: `EXAMINE INBOX: ${box.exists} messages` });
      } catch (error) {
        checks.push({
          name: "read INBOX",
          ok: false,
          detail: "EXAMINE INBOX",
          error: fail(error, "EXAMINE INBOX"),
        });
      } finally {
        await connection.end();
      }
      return { transport: name, ok: checks.every((c) => c.ok), checks };
    },

    async listFolders(opts = {}) {
      return loadFolders(true, opts.signal);
    },

    listMessages(query, opts) {
      return listMessages(query, opts);
    },

    fetchSource(id, opts) {
      return fetchSource(id, opts);
    },

    async getMessage(id, opts = {}) {
      const ref = parseMessageId(id);
      // One deadline for the whole operation (a retry on a new connection included): the per-command
      // timeoutMs would cut off a large download, and no deadline at all let a stalled server hang us.
      const deadline = AbortSignal.timeout(messageTimeoutMs);
      const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
      let fetched: Awaited<ReturnType<ImapFlow["fetchOne"]>>;
      try {
        fetched = await shared.run(
          `FETCH ${id}`,
          async (client) => {
            const lock = await lockMessage(client, ref, id);
            try {
              // RFC822.SIZE first, so that a message over the limit is refused before it is downloaded.
              const sized = await client.fetchOne(String(ref.uid), { uid: true, size: true }, { uid: true });
              if (sized === false) return false;
              if (sized.size !== undefined) checkSize(id, sized.size);
              return await client.fetchOne(String(ref.uid), summaryQuery(true), { uid: true });
            } finally {
              lock.release();
            }
          },
          { signal, retryOnDrop: true, timeoutMs: 0 },
        );
      } catch (error) {
        if (deadline.aborted && !opts.signal?.aborted) {
          throw new M365MailError(
            "TIMEOUT",
            `getMessage ${id}: the message was not read within messageTimeoutMs (${messageTimeoutMs} ms)`,
            {
              source: "imap",
              cause: error,
              hint: "Raise `messageTimeoutMs` for large messages on a slow link, or check that the server still answers.",
            },
          );
        }
        throw error;
      }
      if (fetched === false || !fetched.source) throw notFound(id);
      // A server whose RFC822.SIZE was wrong is caught here, after the fact.
      checkSize(id, fetched.source.byteLength);
      return parseMessage(toSummary(fetched, ref.folder, ref.uidValidity), fetched.source);
    },

    async markRead(id, read, opts = {}) {
      await storeFlag(id, "\\Seen", read, opts.signal);
    },

    async setFlag(id, flagged, opts = {}) {
      await storeFlag(id, "\\Flagged", flagged, opts.signal);
    },

    async listAttachments(id, opts = {}) {
      return attachmentParts((await fetchStructure(id, opts.signal)).bodyStructure);
    },

    async downloadAttachment(id, attachmentId, opts = {}) {
      const info = attachmentParts((await fetchStructure(id, opts.signal)).bodyStructure).find(
        (a) => a.id === attachmentId,
      );
      if (!info) {
        throw new M365MailError("NOT_FOUND", `message ${id} has no attachment ${attachmentId}`, {
          source: "imap",
          hint: "Use an id from listAttachments() (an IMAP part number such as 2 or 1.2).",
        });
      }
      return { ...info, content: streamPart(id, attachmentId, opts.signal) };
    },

    async moveMessage(id, toFolder, opts = {}) {
      const ref = parseMessageId(id);
      const destination = await resolveFolder(toFolder, opts.signal);
      return moveTo(ref, id, destination, opts.signal);
    },

    async deleteMessage(id, opts = {}) {
      await removeMessage(id, opts.permanent === true, opts.signal);
    },

    trashMessage(id, opts = {}) {
      return removeMessage(id, false, opts.signal);
    },

    watch(query = {}, opts = {}) {
      const signals = [closing.signal, ...(opts.signal ? [opts.signal] : [])];
      return stoppable((stop) => {
        const generator = watchFolder(
          {
            settings,
            logger,
            batchSize: fetchBatchSize,
            resolveFolder: (f, signal) => resolveFolder(f, signal),
          },
          query,
          stop,
        );
        return tracked(generator);
      }, signals);
    },

    async close() {
      closing.abort();
      await Promise.allSettled([...watchers]);
      await shared.close();
    },
  };

  /**
   * Outlook's Delete key: to Deleted Items (answers the new id); already there, without a Deleted Items
   * folder, or `permanent`: \\Deleted + UID EXPUNGE (answers undefined).
   */
  async function removeMessage(
    id: string,
    permanent: boolean,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const ref = parseMessageId(id);
    let trash: string | undefined;
    try {
      trash = await resolveFolder("trash", signal);
    } catch (error) {
      if (!(error instanceof M365MailError && error.code === "NOT_FOUND")) throw error;
    }
    if (!permanent && trash && trash !== ref.folder) return moveTo(ref, id, trash, signal);
    if (!permanent && !trash) logger.warn(`no Deleted Items folder found: expunging ${id}`);
    const ok = await shared.run(
      `EXPUNGE ${id}`,
      async (client) => {
        const lock = await lockMessage(client, ref, id);
        try {
          const found = await client.search({ uid: String(ref.uid) }, { uid: true });
          if (!found || found.length === 0) return false;
          // \Deleted + UID EXPUNGE of this UID only (UIDPLUS), never other messages marked \Deleted.
          return client.messageDelete(String(ref.uid), { uid: true });
        } finally {
          lock.release();
        }
      },
      { signal, retryOnDrop: true },
    );
    if (!ok) throw notFound(id);
    return undefined;
  }

  /** Lets close() wait until every watcher has logged out. */
  function tracked<T>(generator: AsyncGenerator<T>): AsyncGenerator<T> {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    watchers.add(done);
    void done.then(() => watchers.delete(done));
    return (async function* () {
      try {
        return yield* generator;
      } finally {
        finish();
      }
    })();
  }

  async function moveTo(
    ref: ImapMessageRef,
    id: string,
    destination: string,
    signal?: AbortSignal,
  ): Promise<string> {
    if (destination === ref.folder) return id;
    // Not retried after a drop: the MOVE may already have happened.
    const result = await shared.run(
      `MOVE ${id} to ${destination}`,
      async (client) => {
        const lock = await lockMessage(client, ref, id);
        try {
          const before = await client.fetchOne(String(ref.uid), { uid: true, envelope: true }, { uid: true });
          if (!before) return undefined;
          const moved = await client.messageMove(String(ref.uid), destination, { uid: true });
          if (!moved) return undefined;
          return { moved, messageId: before.envelope?.messageId };
        } finally {
          lock.release();
        }
      },
      { signal, retryOnDrop: false },
    );
    if (!result) throw notFound(id);
    const newUid = result.moved.uidMap?.get(ref.uid);
    if (newUid !== undefined && result.moved.uidValidity !== undefined) {
      return formatMessageId({ folder: destination, uidValidity: result.moved.uidValidity, uid: newUid });
    }
    // No COPYUID (server without UIDPLUS): find the message in the destination by its Message-ID.
    return shared.run(
      `SEARCH ${destination}`,
      async (client) => {
        const lock = await client.getMailboxLock(destination);
        try {
          const uids = result.messageId
            ? await client.search({ header: { "message-id": result.messageId } }, { uid: true })
            : [];
          const uid = uids && uids.length > 0 ? Math.max(...uids) : undefined;
          if (uid === undefined) {
            throw new M365MailError(
              "INVALID_RESPONSE",
              `moved ${id} to ${destination}, but the server did not say its new id`,
              {
                source: "imap",
                hint: "List the destination folder to find the message.",
              },
            );
          }
          return formatMessageId({
            folder: destination,
            uidValidity: (client.mailbox as { uidValidity: bigint }).uidValidity,
            uid,
          });
        } finally {
          lock.release();
        }
      },
      { signal, retryOnDrop: true },
    );
  }

  async function storeFlag(id: string, flag: string, on: boolean, signal?: AbortSignal): Promise<void> {
    const ref = parseMessageId(id);
    const ok = await shared.run(
      `STORE ${id}`,
      async (client) => {
        const lock = await lockMessage(client, ref, id);
        try {
          const found = await client.search({ uid: String(ref.uid) }, { uid: true });
          if (!found || found.length === 0) return false;
          return on
            ? client.messageFlagsAdd(String(ref.uid), [flag], { uid: true })
            : client.messageFlagsRemove(String(ref.uid), [flag], { uid: true });
        } finally {
          lock.release();
        }
      },
      { signal, retryOnDrop: true },
    );
    if (!ok) throw notFound(id);
  }

  async function fetchStructure(id: string, signal?: AbortSignal) {
    const ref = parseMessageId(id);
    const fetched = await shared.run(
      `FETCH ${id} BODYSTRUCTURE`,
      async (client) => {
        const lock = await lockMessage(client, ref, id);
        try {
          return await client.fetchOne(String(ref.uid), { uid: true, bodyStructure: true }, { uid: true });
        } finally {
          lock.release();
        }
      },
      { signal, retryOnDrop: true },
    );
    if (fetched === false) throw notFound(id);
    return fetched;
  }

  /** Starts only when read: a download nobody reads holds no connection. */
  async function* streamPart(id: string, part: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const ref = parseMessageId(id);
    const lease = await shared.lease(signal);
    let lock: { release(): void } | undefined;
    try {
      lock = await lockMessage(lease.client, ref, id);
      const download = await lease.client.download(String(ref.uid), part, { uid: true });
      if (!download.content) throw notFound(id);
      for await (const chunk of download.content) {
        if (signal?.aborted) {
          download.content.destroy();
          lease.discard();
          throw new M365MailError("ABORTED", `download of ${id} part ${part} was aborted`, {
            source: "imap",
          });
        }
        yield chunk as Buffer;
      }
    } catch (error) {
      if (isConnectionDrop(error)) lease.discard();
      throw toImapError(error, { operation: `FETCH ${id} BODY[${part}]`, ...where });
    } finally {
      lock?.release();
      lease.release();
    }
  }

  return transport;
}
