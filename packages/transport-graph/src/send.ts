import {
  generateMessageId,
  isM365MailError,
  M365MailError,
  type OperationOptions,
  type OutgoingAttachment,
  type OutgoingMessage,
  parseAddress,
  parseAddressList,
  requestNotSent,
  type SendResult,
  validateOutgoingMessage,
} from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import { SOURCE } from "./graph-errors.js";
import {
  attachmentBytes,
  fileAttachmentJson,
  INLINE_ATTACHMENT_LIMIT,
  JSON_REQUEST_LIMIT,
  toGraphMessage,
} from "./graph-message.js";
import { OPERATIONS } from "./operations.js";
import { sleep } from "./retry-policy.js";

/** Upload chunk size: under Outlook's 4 MB limit and a multiple of 320 KiB, as upload sessions prefer. */
export const UPLOAD_CHUNK_BYTES = 3_932_160;
/** Graph refuses requests over about 4 MB (413). */
const REQUEST_LIMIT = 4 * 1024 * 1024;
/** How often a send is repeated after its answer was lost and Sent Items does not hold it. */
const MAX_RESENDS = 2;

/**
 * Sends without ever delivering twice:
 * - 429/503 mean "not processed": the middleware retries them.
 * - After a 5xx, a timeout or a dropped connection the message may or may not have been accepted.
 *   We look for its Message-ID in Sent Items (for up to `sentItemsLookupMs`) and send again only
 *   when it is not there.
 */
export async function sendMessage(
  ctx: GraphContext,
  message: OutgoingMessage,
  signal?: AbortSignal,
  onProgress?: OperationOptions["onProgress"],
): Promise<SendResult> {
  validateOutgoingMessage(message);
  if (message.raw !== undefined) return sendRaw(ctx, message.raw, signal);

  const fromAddress = message.from !== undefined ? parseAddress(message.from).address : ctx.mailbox;
  const messageId = normalizeMessageId(message.messageId) ?? generateMessageId(fromAddress);
  const attachments = message.attachments ?? [];
  const result: SendResult = {
    transport: ctx.name,
    messageId,
    accepted: [
      ...parseAddressList(message.to),
      ...parseAddressList(message.cc),
      ...parseAddressList(message.bcc),
    ].map((a) => a.address),
    rejected: [],
  };

  const sizes = attachments.map((a) => attachmentBytes(a).byteLength);
  const hasLarge = sizes.some((size) => size > INLINE_ATTACHMENT_LIMIT);
  const estimate =
    JSON.stringify(toGraphMessage(message, messageId, [])).length +
    sizes.reduce((sum, size) => sum + Math.ceil(size / 3) * 4 + 300, 0);

  if (!hasLarge && estimate <= JSON_REQUEST_LIMIT) {
    const body = { message: toGraphMessage(message, messageId, attachments), saveToSentItems: true };
    await sendOnce(ctx, messageId, signal, async () => {
      await ctx.http.request(OPERATIONS.sendMail, "POST", `${ctx.mailboxPath}/sendMail`, {
        body,
        signal,
        read: "none",
      });
    });
    return result;
  }
  // Progress counts attachment bytes as they reach Graph (the message itself is small beside them).
  const total = sizes.reduce((sum, size) => sum + size, 0);
  let done = 0;
  const advance = onProgress
    ? (bytes: number) => {
        done += bytes;
        onProgress({ done, total });
      }
    : undefined;
  await sendViaDraft(ctx, message, messageId, attachments, signal, advance);
  return result;
}

/** A draft, its attachments (over 3 MB through upload sessions), then `send`. Needs Mail.ReadWrite. */
async function sendViaDraft(
  ctx: GraphContext,
  message: OutgoingMessage,
  messageId: string,
  attachments: readonly OutgoingAttachment[],
  signal: AbortSignal | undefined,
  advance?: (bytes: number) => void,
): Promise<void> {
  const mb = ctx.mailboxPath;
  const { data: draft } = await ctx.http.request<{ id: string }>(
    OPERATIONS.createDraft,
    "POST",
    `${mb}/messages`,
    {
      body: toGraphMessage(message, messageId, []),
      signal,
    },
  );
  const draftPath = `${mb}/messages/${encodeURIComponent(draft.id)}`;
  const deleteDraft = () =>
    ctx.http
      .request(OPERATIONS.deleteDraft, "DELETE", draftPath, { read: "none" })
      .catch((e: unknown) => ctx.log.warn("could not delete the unsent draft", { error: e }));
  try {
    for (const attachment of attachments) {
      const bytes = attachmentBytes(attachment);
      if (bytes.byteLength > INLINE_ATTACHMENT_LIMIT) {
        await uploadAttachment(ctx, draftPath, attachment, bytes, signal, advance);
      } else {
        await ctx.http.request(OPERATIONS.addAttachment, "POST", `${draftPath}/attachments`, {
          body: fileAttachmentJson(attachment),
          signal,
          read: "none",
        });
        advance?.(bytes.byteLength);
      }
    }
  } catch (error) {
    // Nothing was sent: do not leave a half-built draft behind, and say so (an outbox sends it again
    // instead of searching Sent Items for a message that never left).
    await deleteDraft();
    throw error instanceof M365MailError
      ? requestNotSent(error, "not sent (adding its attachments failed)")
      : error;
  }
  // Set when a `send` try may have been processed: from then on the draft is never deleted here.
  let maybeSent = false;
  try {
    await sendOnce(
      ctx,
      messageId,
      signal,
      async () => {
        try {
          await ctx.http.request(OPERATIONS.sendDraft, "POST", `${draftPath}/send`, { signal, read: "none" });
        } catch (error) {
          if (!refusedUnprocessed(error)) maybeSent = true;
          throw error;
        }
      },
      // Sent Items may lag behind; a draft that is gone (or no longer a draft) was sent.
      async () => {
        try {
          const { data } = await ctx.http.request<{ isDraft?: boolean }>(
            OPERATIONS.findSent,
            "GET",
            `${draftPath}?$select=id,isDraft`,
            { signal },
          );
          return data.isDraft === false;
        } catch (error) {
          if (isM365MailError(error, "NOT_FOUND")) return true;
          throw error;
        }
      },
    );
  } catch (error) {
    // Graph refused `send` without processing it (429, 4xx, or it never left): the draft would stay in
    // Drafts, one more per retry. Kept when a try may have sent it: it is the evidence to look for.
    if (!maybeSent && refusedUnprocessed(error)) await deleteDraft();
    throw error;
  }
}

/** A failure after which the request certainly did nothing: it never left, or Graph refused it (4xx, 503). */
function refusedUnprocessed(error: unknown): boolean {
  if (!(error instanceof M365MailError)) return false;
  if (error.requestSent === false) return true;
  const status = error.status ?? 0;
  return (status >= 400 && status < 500) || status === 503;
}

export async function uploadAttachment(
  ctx: GraphContext,
  draftPath: string,
  attachment: OutgoingAttachment,
  bytes: Uint8Array,
  signal: AbortSignal | undefined,
  advance?: (bytes: number) => void,
): Promise<void> {
  const { data: session } = await ctx.http.request<{ uploadUrl?: string }>(
    OPERATIONS.createUploadSession,
    "POST",
    `${draftPath}/attachments/createUploadSession`,
    {
      body: {
        AttachmentItem: {
          attachmentType: "file",
          name: attachment.filename,
          size: bytes.byteLength,
          contentType: attachment.contentType ?? "application/octet-stream",
          ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
          isInline: attachment.inline ?? attachment.contentId !== undefined,
        },
      },
      signal,
    },
  );
  if (!session.uploadUrl) {
    throw new M365MailError("INVALID_RESPONSE", "createUploadSession returned no uploadUrl", {
      source: SOURCE,
    });
  }
  for (let start = 0; start < bytes.byteLength; start += UPLOAD_CHUNK_BYTES) {
    const end = Math.min(bytes.byteLength, start + UPLOAD_CHUNK_BYTES);
    // The uploadUrl carries its own credential: an Authorization header would be refused.
    await ctx.http.request(OPERATIONS.uploadChunk, "PUT", session.uploadUrl, {
      anonymous: true,
      body: bytes.subarray(start, end),
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Range": `bytes ${start}-${end - 1}/${bytes.byteLength}`,
      },
      signal,
      read: "none",
    });
    advance?.(end - start);
  }
}

/** Raw RFC 5322 source: base64 with `Content-Type: text/plain`, as Graph's MIME send wants it. */
async function sendRaw(
  ctx: GraphContext,
  raw: Uint8Array | string,
  signal: AbortSignal | undefined,
): Promise<SendResult> {
  const source =
    typeof raw === "string"
      ? Buffer.from(raw, "utf8")
      : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const headerEnd = findHeaderEnd(source);
  // latin1 maps bytes 1:1, so header offsets stay byte offsets.
  const header = source.subarray(0, headerEnd).toString("latin1");
  let messageId = /^message-id:[ \t]*(<[^>\r\n]+>)/im.exec(header)?.[1];
  let mime = source;
  if (!messageId) {
    const from = /^from:.*?([^\s<>"]+@[^\s<>"]+)/im.exec(header)?.[1] ?? ctx.mailbox;
    messageId = generateMessageId(from);
    mime = Buffer.concat([Buffer.from(`Message-ID: ${messageId}\r\n`, "latin1"), source]);
  }
  const body = mime.toString("base64");
  if (body.length > REQUEST_LIMIT) {
    throw new M365MailError(
      "MESSAGE_TOO_LARGE",
      `the raw message is ${mime.byteLength} bytes; Graph takes MIME up to about 3 MB`,
      {
        source: SOURCE,
        hint: "Send it as a structured message with `attachments`: m365-mail uploads attachments over 3 MB in chunks.",
      },
    );
  }
  await sendOnce(ctx, messageId, signal, async () => {
    await ctx.http.request(OPERATIONS.sendMail, "POST", `${ctx.mailboxPath}/sendMail`, {
      body,
      headers: { "Content-Type": "text/plain" },
      signal,
      read: "none",
    });
  });
  const recipients = [...header.matchAll(/^(?:to|cc|bcc):((?:.*)(?:\r?\n[ \t].*)*)/gim)].flatMap(
    (m) => m[1]?.match(/[^\s<>",;:]+@[^\s<>",;:]+/g) ?? [],
  );
  return { transport: ctx.name, messageId, accepted: recipients, rejected: [] };
}

async function sendOnce(
  ctx: GraphContext,
  messageId: string,
  signal: AbortSignal | undefined,
  attempt: () => Promise<void>,
  alreadySent?: () => Promise<boolean>,
): Promise<void> {
  for (let resends = 0; ; resends++) {
    try {
      await attempt();
      return;
    } catch (error) {
      if (!isUncertain(error)) throw error;
      // The caller checks Sent Items itself, after its own grace period (an outbox).
      if (ctx.uncertainSends === "report") throw error;
      ctx.log.warn(
        `send: no clear answer (${error.code}); looking for ${messageId} in Sent Items before sending again`,
      );
      let sent: boolean;
      try {
        sent = (await findInSentItems(ctx, messageId, signal)) || ((await alreadySent?.()) ?? false);
      } catch (lookupError) {
        throw new M365MailError(
          error.code,
          `send: no clear answer (${error.code}) and Sent Items could not be checked; the message may have been sent`,
          {
            source: SOURCE,
            cause: lookupError,
            status: error.status,
            retryable: false,
            hint: `Check Sent Items for ${messageId} before sending again${
              isM365MailError(lookupError, "ACCESS_DENIED")
                ? "; grant Mail.Read (App registration → API permissions → Grant admin consent) so m365-mail can check itself."
                : ` (the look-up failed with ${isM365MailError(lookupError) ? lookupError.code : "an error"}).`
            }`,
          },
        );
      }
      if (sent) {
        ctx.log.info(`send: ${messageId} is in Sent Items; not sending it again`);
        return;
      }
      if (resends >= MAX_RESENDS) throw error;
      ctx.log.warn(`send: ${messageId} is not in Sent Items; sending again`);
    }
  }
}

/**
 * After a timeout, a connection dropped once the request was under way, or a 5xx other than 503,
 * Graph may have accepted the message.
 */
function isUncertain(error: unknown): error is M365MailError {
  if (!(error instanceof M365MailError)) return false;
  // Sign-in failed, connection refused, TLS handshake failed: the request never left.
  if (error.requestSent === false) return false;
  if (error.code === "TIMEOUT" || error.code === "CONNECTION_FAILED" || error.code === "INVALID_RESPONSE")
    return true;
  return error.code === "SERVER_ERROR" && (error.status ?? 0) >= 500 && error.status !== 503;
}

/** Polls Sent Items for the Message-ID; Exchange files the copy a moment after accepting the send. */
export async function findInSentItems(
  ctx: GraphContext,
  messageId: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const filter = encodeURIComponent(`internetMessageId eq '${messageId.replace(/'/g, "''")}'`);
  const url = `${ctx.mailboxPath}/mailFolders/sentitems/messages?$filter=${filter}&$select=id,internetMessageId&$top=5`;
  const deadline = Date.now() + ctx.sentItemsLookupMs;
  for (;;) {
    const { data } = await ctx.http.request<{ value?: { internetMessageId?: string }[] }>(
      OPERATIONS.findSent,
      "GET",
      url,
      {
        signal,
      },
    );
    if ((data.value ?? []).some((m) => m.internetMessageId?.toLowerCase() === messageId.toLowerCase()))
      return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(1000, left), signal);
  }
}

function normalizeMessageId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const trimmed = id.trim();
  return trimmed.startsWith("<") ? trimmed : `<${trimmed}>`;
}

function findHeaderEnd(source: Buffer): number {
  const crlf = source.indexOf("\r\n\r\n");
  const lf = source.indexOf("\n\n");
  if (crlf === -1 && lf === -1) return source.byteLength;
  if (crlf === -1) return lf;
  if (lf === -1) return crlf;
  return Math.min(crlf, lf);
}
