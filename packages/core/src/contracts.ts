import type { CloudPreset } from "./clouds.js";
import type { M365MailError } from "./errors.js";
import type {
  AttachmentDownload,
  AttachmentInfo,
  CalendarEvent,
  DateRange,
  DraftRef,
  MailEvent,
  MailFolder,
  Message,
  MessageQuery,
  MessageSummary,
  OutgoingMessage,
  SendResult,
} from "./message.js";
import type { ReplyInput } from "./reply.js";
import type { SignInHealthListener, SignInHealthState } from "./sign-in-health.js";

/** Bumped when the Transport or TokenProvider contract changes incompatibly; checked at registration. */
export const CONTRACT_VERSION = 1;

/** The token audience. One access token never covers both: Graph and Outlook (IMAP/POP/SMTP). */
export type Resource = "graph" | "outlook";

export interface AccessToken {
  readonly token: string;
  readonly expiresAt: Date;
  readonly resource: Resource;
  readonly scopes: readonly string[];
}

export interface GetTokenOptions {
  /** Skip the memory cache and ask Entra ID again (after a 401, or an IMAP `AccessTokenExpired`). */
  forceRefresh?: boolean;
  signal?: AbortSignal;
}

/** Signs in as one Microsoft 365 user and hands out access tokens per resource. */
export interface TokenProvider {
  readonly kind: "token-provider";
  readonly name: string;
  /** The mailbox owner the tokens are for (UPN). */
  readonly username: string;
  /** The cloud the tokens belong to; transports take their default hosts from it. */
  readonly cloud?: CloudPreset;
  getAccessToken(resource: Resource, options?: GetTokenOptions): Promise<AccessToken>;
  dispose?(): Promise<void>;
  /**
   * Sign-in problems that need a person (MFA required, password expired, refresh token revoked, …),
   * once per change of state, and "recovered" when a later grant succeeds. Returns an unsubscribe function.
   */
  onHealthChange?(listener: SignInHealthListener): () => void;
  /** The sign-in state now (no request is made). */
  healthState?(): SignInHealthState;
}

export interface TransportCapabilities {
  readonly send: boolean;
  readonly read: boolean;
  readonly watch: boolean;
  readonly folders: boolean;
  readonly calendar: boolean;
  /** `reply` (reply, reply-all, forward). Over IMAP the mailbox composes it and sends over SMTP. */
  readonly reply?: boolean;
  /** `createDraft`, `updateDraft`, `sendDraft`. */
  readonly drafts?: boolean;
  /** `listMessages` honours `query.search`. */
  readonly search?: boolean;
  /** `markRead`, `setFlag`, `moveMessage`, `deleteMessage`, `trashMessage`. */
  readonly manage?: boolean;
  /** `listAttachments`, `downloadAttachment` (streamed). */
  readonly attachments?: boolean;
}

/** Options of operations on one message; `folder` helps transports whose ids do not say it. */
export interface MessageOperationOptions extends OperationOptions {
  folder?: string;
}

/** How far a long transfer got: bytes done of the total. */
export interface TransferProgress {
  readonly done: number;
  readonly total: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /**
   * Called as a long transfer advances (Graph's chunked attachment uploads). Transports that cannot
   * tell never call it.
   */
  onProgress?: (progress: TransferProgress) => void;
}

export interface VerifyCheck {
  /** What was checked, e.g. "sign-in", "Mail.Read", "SMTP AUTH". */
  readonly name: string;
  readonly ok: boolean;
  /** What was done, e.g. "GET /me/mailFolders?$top=1". */
  readonly detail: string;
  /** The delegated permission the check exercised, when there is one. */
  readonly permission?: string;
  readonly error?: M365MailError;
}

export interface VerifyReport {
  readonly transport: string;
  readonly ok: boolean;
  readonly checks: readonly VerifyCheck[];
}

/**
 * A way to reach the mailbox. The capabilities say which optional methods work; a method the transport
 * lacks is either absent or throws `NOT_SUPPORTED` (core's `notSupported()`), never does something else.
 */
export interface Transport {
  readonly kind: "transport";
  readonly name: string;
  /** CONTRACT_VERSION this transport was written for. */
  readonly contractVersion?: number;
  readonly capabilities: TransportCapabilities;
  /** A real round trip, not just AUTH: Microsoft 365 can accept AUTH and fail on the next command. */
  verify(options?: OperationOptions): Promise<VerifyReport>;
  send?(message: OutgoingMessage, options?: OperationOptions): Promise<SendResult>;
  listFolders?(options?: OperationOptions): Promise<MailFolder[]>;
  listMessages?(query?: MessageQuery, options?: OperationOptions): AsyncIterable<MessageSummary>;
  getMessage?(id: string, options?: OperationOptions & { folder?: string }): Promise<Message>;
  markRead?(id: string, read: boolean, options?: OperationOptions & { folder?: string }): Promise<void>;
  moveMessage?(
    id: string,
    toFolder: string,
    options?: OperationOptions & { folder?: string },
  ): Promise<string>;
  deleteMessage?(id: string, options?: OperationOptions & { folder?: string }): Promise<void>;
  /**
   * Outlook's Delete key: moves the message to Deleted Items and answers its id there; a message
   * already in Deleted Items is deleted for good and `undefined` is answered.
   */
  trashMessage?(id: string, options?: MessageOperationOptions): Promise<string | undefined>;
  /** Flag for follow-up, or clear the flag. */
  setFlag?(id: string, flagged: boolean, options?: MessageOperationOptions): Promise<void>;
  /** Reply, reply-all or forward, quoting the original; sent at once. */
  reply?(id: string, input: ReplyInput, options?: MessageOperationOptions): Promise<SendResult>;
  /** Saves a message in Drafts without sending it. */
  createDraft?(message: OutgoingMessage, options?: OperationOptions): Promise<DraftRef>;
  /** Replaces a draft's fields (those given); returns the draft's id, which may change. */
  updateDraft?(id: string, message: OutgoingMessage, options?: OperationOptions): Promise<DraftRef>;
  /** Sends a draft; it moves to Sent Items. */
  sendDraft?(id: string, options?: OperationOptions): Promise<SendResult>;
  listAttachments?(id: string, options?: MessageOperationOptions): Promise<AttachmentInfo[]>;
  /** One attachment's bytes as a stream (never all in memory); consume or abandon `content`. */
  downloadAttachment?(
    id: string,
    attachmentId: string,
    options?: MessageOperationOptions,
  ): Promise<AttachmentDownload>;
  /** New mail as it arrives; survives token expiry and reconnects without losing or repeating mail. */
  watch?(query?: MessageQuery, options?: OperationOptions): AsyncIterable<MailEvent>;
  listEvents?(range: DateRange, options?: OperationOptions): AsyncIterable<CalendarEvent>;
  close(): Promise<void>;
}

/**
 * Typed lookup: a transport package adds its type here by declaration merging, e.g.
 * `declare module "@m365-mail/core" { interface TransportRegistry { graph: GraphTransport } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in transport packages
export interface TransportRegistry {}
