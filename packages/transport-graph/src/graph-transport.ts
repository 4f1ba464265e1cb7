import { rootCertificates } from "node:tls";
import {
  type AttachmentDownload,
  type AttachmentInfo,
  type CalendarEvent,
  type CloudPreset,
  CONTRACT_VERSION,
  type DateRange,
  type DraftRef,
  type Logger,
  M365MailError,
  type MailEvent,
  type MailFolder,
  type Message,
  type MessageQuery,
  type MessageSummary,
  type OperationOptions,
  type OutgoingMessage,
  type ReplyInput,
  type SendResult,
  safeLogger,
  type TokenProvider,
  type Transport,
  type TransportCapabilities,
  type VerifyReport,
} from "@m365-mail/core";
import { Agent, fetch as undiciFetch } from "undici";
import { downloadAttachment, listAttachments } from "./attachments.js";
import { listEvents } from "./calendar.js";
import { type DeltaOptions, type DeltaResult, delta, type WatchOptions, watch } from "./delta.js";
import { createDraft, sendDraft, updateDraft } from "./drafts.js";
import { listFolders } from "./folders.js";
import type { GraphContext } from "./graph-context.js";
import { SOURCE } from "./graph-errors.js";
import { graphResourceFor } from "./graph-hosts.js";
import { GraphHttp } from "./graph-http.js";
import {
  type BulkResult,
  deleteMessage,
  deleteMessages,
  type GetMessageOptions,
  getMessage,
  getMessages,
  listMessages,
  markRead,
  markReadMany,
  moveMessage,
  moveMessages,
  setFlag,
  trashMessage,
} from "./messages.js";
import type { FetchFunction } from "./middleware.js";
import { replyToMessage } from "./reply.js";
import { type GraphRetryOptions, resolveRetryOptions } from "./retry-policy.js";
import { createSemaphore } from "./semaphore.js";
import { sendMessage } from "./send.js";
import { verify } from "./verify.js";

export interface GraphTransportOptions {
  /** Any TokenProvider (e.g. `ropcTokenProvider`). Asked for a "graph" token on every request. */
  auth: TokenProvider;
  /**
   * The mailbox to work on: the signed-in user's own (default, `/me`) or another mailbox's address
   * (`/users/{address}`), e.g. a shared mailbox — that needs the `.Shared` permissions.
   * @default auth.username
   */
  mailbox?: string;
  /**
   * Graph origin, without `/v1.0`.
   * @default auth.cloud?.graphOrigin ?? auth.cloud?.graphEndpoint ?? "https://graph.microsoft.com"
   */
  baseUrl?: string;
  /**
   * Requests in flight at once for this mailbox (Outlook allows 4; a 5th gets 429).
   * @default 4
   */
  maxConcurrency?: number;
  /** Retry budget for throttling (429/503) and passing failures. */
  retry?: GraphRetryOptions;
  /**
   * Time limit of one try of one request, body included.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * Extra CA certificates (PEM) to trust besides the system roots — the emulator's CA, or a
   * TLS-inspecting proxy's. `NODE_EXTRA_CA_CERTS` works too.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Replaces `fetch` (a proxy agent, tests). When set, `ca` is not used. */
  fetch?: FetchFunction;
  /**
   * After a send whose answer was lost (5xx, timeout, dropped connection): how long to look for
   * the message in Sent Items before sending it again.
   * @default 10000
   */
  sentItemsLookupMs?: number;
  /**
   * What a send does after its answer was lost. `"check-then-resend"`: look in Sent Items (above) and
   * send again, at most twice, when the copy is not there. `"report"`: throw the failure at once
   * (TIMEOUT, CONNECTION_FAILED, INVALID_RESPONSE, SERVER_ERROR — the message may have been sent), for a
   * caller that checks Sent Items itself later and never resends blindly, such as `@m365-mail/outbox`.
   * @default "check-then-resend"
   */
  uncertainSends?: "check-then-resend" | "report";
  /**
   * Poll interval of `watch()`.
   * @default 15000
   */
  watchIntervalMs?: number;
  /**
   * Registry name; give a second Graph transport (another mailbox) its own.
   * @default "graph"
   */
  name?: string;
  /** Receives debug/info/warn lines; secrets are redacted first. */
  logger?: Logger;
}

/** Graph transport: everything a Transport can do, plus delta sync and batched bulk operations. */
export interface GraphTransport extends Transport {
  readonly capabilities: TransportCapabilities & {
    send: true;
    read: true;
    watch: true;
    folders: true;
    calendar: true;
    reply: true;
    drafts: true;
    search: true;
    manage: true;
    attachments: true;
  };
  /** The mailbox address the transport works on. */
  readonly mailbox: string;
  verify(options?: OperationOptions): Promise<VerifyReport>;
  send(message: OutgoingMessage, options?: OperationOptions): Promise<SendResult>;
  listFolders(options?: OperationOptions): Promise<MailFolder[]>;
  listMessages(query?: MessageQuery, options?: OperationOptions): AsyncIterable<MessageSummary>;
  getMessage(id: string, options?: GetMessageOptions & { folder?: string }): Promise<Message>;
  markRead(id: string, read: boolean, options?: OperationOptions): Promise<void>;
  moveMessage(id: string, toFolder: string, options?: OperationOptions): Promise<string>;
  /** `DELETE`: Exchange keeps the message in Recoverable Items (not Deleted Items) for a while. */
  deleteMessage(id: string, options?: OperationOptions): Promise<void>;
  /** Outlook's Delete key: to Deleted Items (answers the new id); already there, `DELETE` (undefined). */
  trashMessage(id: string, options?: OperationOptions): Promise<string | undefined>;
  setFlag(id: string, flagged: boolean, options?: OperationOptions): Promise<void>;
  /** `createReply`/`createReplyAll`/`createForward`, attachments, then `send`. */
  reply(id: string, input: ReplyInput, options?: OperationOptions): Promise<SendResult>;
  createDraft(message: OutgoingMessage, options?: OperationOptions): Promise<DraftRef>;
  updateDraft(id: string, message: OutgoingMessage, options?: OperationOptions): Promise<DraftRef>;
  sendDraft(id: string, options?: OperationOptions): Promise<SendResult>;
  listAttachments(id: string, options?: OperationOptions): Promise<AttachmentInfo[]>;
  downloadAttachment(
    id: string,
    attachmentId: string,
    options?: OperationOptions,
  ): Promise<AttachmentDownload>;
  watch(query?: MessageQuery, options?: WatchOptions): AsyncIterable<MailEvent>;
  listEvents(range: DateRange, options?: OperationOptions): AsyncIterable<CalendarEvent>;
  /** Changes in a folder since `state` (created/updated/deleted) and the next state. */
  delta(options?: DeltaOptions): Promise<DeltaResult>;
  /** Several messages by id, 20 per `$batch` round trip. */
  getMessages(ids: readonly string[], options?: OperationOptions): Promise<Message[]>;
  markReadMany(ids: readonly string[], read: boolean, options?: OperationOptions): Promise<BulkResult[]>;
  moveMessages(ids: readonly string[], toFolder: string, options?: OperationOptions): Promise<BulkResult[]>;
  deleteMessages(ids: readonly string[], options?: OperationOptions): Promise<BulkResult[]>;
}

declare module "@m365-mail/core" {
  interface TransportRegistry {
    graph: GraphTransport;
  }
}

export function graphTransport(options: GraphTransportOptions): GraphTransport {
  const { auth } = options;
  if (auth?.kind !== "token-provider") {
    throw new M365MailError("CONFIG_INVALID", "graphTransport needs `auth`, a TokenProvider", {
      source: SOURCE,
      hint: "Pass auth: ropcTokenProvider({ tenantId, clientId, username, password }).",
    });
  }
  // A cloud may serve Graph on another origin than its scope URI (the emulator's `graphOrigin`).
  const cloud = auth.cloud as (CloudPreset & { readonly graphOrigin?: string }) | undefined;
  const origin = originOf(
    options.baseUrl ?? cloud?.graphOrigin ?? cloud?.graphEndpoint ?? "https://graph.microsoft.com",
  );
  const mailbox = options.mailbox ?? auth.username;
  const sharedMailbox = mailbox.toLowerCase() === auth.username.toLowerCase() ? undefined : mailbox;
  const graphResource = graphResourceFor(auth.cloud?.graphEndpoint, origin);
  const log = safeLogger(options.logger, SOURCE);

  let agent: Agent | undefined;
  let fetchImpl: FetchFunction;
  if (options.fetch) fetchImpl = options.fetch;
  else if (options.ca !== undefined) {
    const extra = (Array.isArray(options.ca) ? options.ca : [options.ca]) as Array<string | Buffer>;
    agent = new Agent({ connect: { ca: [...rootCertificates, ...extra.map(String)] } });
    const dispatcher = agent;
    fetchImpl = (url, init) =>
      undiciFetch(url, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
  } else fetchImpl = (url, init) => globalThis.fetch(url, init);

  const http = new GraphHttp({
    auth,
    origin,
    graphResource,
    sharedMailbox,
    semaphore: createSemaphore(options.maxConcurrency ?? 4),
    retry: resolveRetryOptions(options.retry),
    timeoutMs: options.timeoutMs ?? 30_000,
    fetch: fetchImpl,
    log,
  });
  const name = options.name ?? "graph";
  const ctx: GraphContext = {
    name,
    http,
    auth,
    mailboxPath: sharedMailbox ? `/users/${encodeURIComponent(sharedMailbox)}` : "/me",
    mailbox,
    sharedMailbox,
    graphResource,
    sentItemsLookupMs: options.sentItemsLookupMs ?? 10_000,
    uncertainSends: options.uncertainSends ?? "check-then-resend",
    watchIntervalMs: options.watchIntervalMs ?? 15_000,
    log,
    folderCache: undefined,
  };

  let closed = false;
  const open = (): GraphContext => {
    if (closed) {
      throw new M365MailError("CONFIG_INVALID", "this Graph transport was closed", {
        source: SOURCE,
        hint: "Create a new transport with graphTransport({ auth }).",
      });
    }
    return ctx;
  };

  const transport: GraphTransport = {
    kind: "transport",
    name,
    contractVersion: CONTRACT_VERSION,
    capabilities: {
      send: true,
      read: true,
      watch: true,
      folders: true,
      calendar: true,
      reply: true,
      drafts: true,
      search: true,
      manage: true,
      attachments: true,
    },
    mailbox,
    verify: (o) => verify(open(), o?.signal),
    send: (message, o) => sendMessage(open(), message, o?.signal, o?.onProgress),
    listFolders: (o) => listFolders(open(), o?.signal),
    listMessages: (query, o) => listMessages(open(), query, o?.signal),
    getMessage: (id, o) => getMessage(open(), id, o),
    markRead: (id, read, o) => markRead(open(), id, read, o?.signal),
    moveMessage: (id, toFolder, o) => moveMessage(open(), id, toFolder, o?.signal),
    deleteMessage: (id, o) => deleteMessage(open(), id, o?.signal),
    trashMessage: (id, o) => trashMessage(open(), id, o?.signal),
    setFlag: (id, flagged, o) => setFlag(open(), id, flagged, o?.signal),
    reply: (id, input, o) => replyToMessage(open(), id, input, o?.signal),
    createDraft: (message, o) => createDraft(open(), message, o?.signal),
    updateDraft: (id, message, o) => updateDraft(open(), id, message, o?.signal),
    sendDraft: (id, o) => sendDraft(open(), id, o?.signal),
    listAttachments: (id, o) => listAttachments(open(), id, o?.signal),
    downloadAttachment: (id, attachmentId, o) => downloadAttachment(open(), id, attachmentId, o?.signal),
    watch: (query, o) => watch(open(), query, o),
    listEvents: (range, o) => listEvents(open(), range, o?.signal),
    delta: (o) => delta(open(), o),
    getMessages: (ids, o) => getMessages(open(), ids, o?.signal),
    markReadMany: (ids, read, o) => markReadMany(open(), ids, read, o?.signal),
    moveMessages: (ids, toFolder, o) => moveMessages(open(), ids, toFolder, o?.signal),
    deleteMessages: (ids, o) => deleteMessages(open(), ids, o?.signal),
    async close() {
      if (closed) return;
      closed = true;
      await agent?.close();
    },
  };
  return transport;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch (cause) {
    throw new M365MailError("CONFIG_INVALID", `baseUrl "${url}" is not a URL`, {
      source: SOURCE,
      cause,
      hint: "Use the Graph origin, e.g. https://graph.microsoft.com.",
    });
  }
}
