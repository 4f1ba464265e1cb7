/**
 * What each Graph call needs. The permission names feed error hints: a 403 names exactly the
 * delegated permission to add (the `.Shared` variant when the transport works on another mailbox).
 */
export interface GraphOperation {
  /** Shown in error messages: "send mail", "list messages". */
  readonly name: string;
  /** Delegated permission for the signed-in user's own mailbox. */
  readonly permission: string;
  /** Delegated permission when `mailbox` is another (shared) mailbox. */
  readonly sharedPermission: string;
  /**
   * Safe to repeat after a timeout, a dropped connection or a 5xx. POSTs that create or send
   * something are not: repeating them after a 504 can deliver a message twice.
   */
  readonly idempotent: boolean;
}

const op = (
  name: string,
  permission: string,
  sharedPermission: string,
  idempotent: boolean,
): GraphOperation => ({
  name,
  permission,
  sharedPermission,
  idempotent,
});

export const OPERATIONS = {
  me: op("read the signed-in user", "User.Read", "User.Read", true),
  readMail: op("read mail", "Mail.Read", "Mail.Read.Shared", true),
  listFolders: op("list folders", "Mail.Read", "Mail.Read.Shared", true),
  listMessages: op("list messages", "Mail.Read", "Mail.Read.Shared", true),
  getMessage: op("get message", "Mail.Read", "Mail.Read.Shared", true),
  delta: op("sync messages (delta)", "Mail.Read", "Mail.Read.Shared", true),
  findSent: op("look up the message in Sent Items", "Mail.Read", "Mail.Read.Shared", true),
  markRead: op("mark message read", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  // A repeated move after a lost answer would fail with 404 (the id changed), never duplicate.
  moveMessage: op("move message", "Mail.ReadWrite", "Mail.ReadWrite.Shared", false),
  deleteMessage: op("delete message", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  setFlag: op("flag message", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  searchMessages: op("search messages", "Mail.Read", "Mail.Read.Shared", true),
  // createReply/createForward make a draft: repeating it after a lost answer leaves a second draft.
  createReply: op("create reply draft", "Mail.ReadWrite", "Mail.ReadWrite.Shared", false),
  updateDraft: op("update draft", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  listAttachments: op("list attachments", "Mail.Read", "Mail.Read.Shared", true),
  downloadAttachment: op("download attachment", "Mail.Read", "Mail.Read.Shared", true),
  sendMail: op("send mail", "Mail.Send", "Mail.Send.Shared", false),
  createDraft: op("create draft (large message)", "Mail.ReadWrite", "Mail.ReadWrite.Shared", false),
  addAttachment: op("add attachment to draft", "Mail.ReadWrite", "Mail.ReadWrite.Shared", false),
  createUploadSession: op(
    "create attachment upload session",
    "Mail.ReadWrite",
    "Mail.ReadWrite.Shared",
    false,
  ),
  // Each chunk names its byte range: sending it again overwrites the same bytes.
  uploadChunk: op("upload attachment chunk", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  sendDraft: op("send draft", "Mail.Send", "Mail.Send.Shared", false),
  deleteDraft: op("delete draft", "Mail.ReadWrite", "Mail.ReadWrite.Shared", true),
  calendarView: op("read calendar", "Calendars.Read", "Calendars.Read.Shared", true),
  // A batch of GETs is safe to repeat; batches that change mail are only retried per failed step.
  batchRead: op("batch read", "Mail.Read", "Mail.Read.Shared", true),
} as const satisfies Record<string, GraphOperation>;
