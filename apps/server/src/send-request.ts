import { createHash } from "node:crypto";
import {
  generateMessageId,
  M365MailError,
  type OutgoingMessage,
  parseAddress,
  validateOutgoingMessage,
} from "@m365-mail/core";
import type { OutboxMessage } from "@m365-mail/outbox";
import { checkAtTheDoor } from "./send-limits.js";

export type SendVia = "auto" | "graph" | "smtp";

/** The body of `POST /v1/messages`, as the JSON schema below admits it. */
export interface SendRequestBody {
  from?: string;
  to?: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  replyTo?: string | string[];
  subject?: string;
  text?: string;
  html?: string;
  headers?: Record<string, string>;
  attachments?: Array<{
    filename: string;
    /** Base64 of the bytes. */
    content: string;
    contentType?: string;
    contentId?: string;
    inline?: boolean;
  }>;
  via?: SendVia;
}

/** What the outbox stores: the message as JSON (attachments stay base64) and its Message-ID. */
export interface StoredMessage extends Omit<SendRequestBody, "via"> {
  messageId: string;
}

// No maxItems here: more than 500 recipients over to, cc and bcc together is refused by prepareSend
// with a message that says so (a schema error could only talk about one field's array).
const addressList = {
  anyOf: [
    { type: "string", maxLength: 512 },
    { type: "array", items: { type: "string", maxLength: 512 } },
  ],
} as const;

export const sendRequestSchema = {
  $id: "SendRequest",
  type: "object",
  additionalProperties: false,
  properties: {
    from: { type: "string", maxLength: 512 },
    to: addressList,
    cc: addressList,
    bcc: addressList,
    replyTo: addressList,
    subject: { type: "string", maxLength: 998 },
    text: { type: "string" },
    html: { type: "string" },
    headers: {
      type: "object",
      maxProperties: 50,
      additionalProperties: { type: "string", maxLength: 998 },
    },
    attachments: {
      type: "array",
      maxItems: 100,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["filename", "content"],
        properties: {
          filename: { type: "string", minLength: 1, maxLength: 255 },
          content: { type: "string", description: "base64 of the file's bytes" },
          contentType: { type: "string", maxLength: 255, pattern: "^[!-~]+/[!-~]+$" },
          contentId: { type: "string", maxLength: 255 },
          inline: { type: "boolean" },
        },
      },
    },
    via: {
      type: "string",
      enum: ["auto", "graph", "smtp"],
      description: "auto: Graph first, SMTP when Graph is refused before anything was submitted",
    },
  },
} as const;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function invalid(message: string, hint: string): M365MailError {
  return new M365MailError("MESSAGE_INVALID", message, { source: "server", hint });
}

/** Bytes that a base64 string decodes to, without decoding it. */
function decodedLength(b64: string): number {
  const padding = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

export function toOutgoingMessage(stored: StoredMessage): OutgoingMessage {
  const { attachments, messageId, ...rest } = stored;
  return {
    ...rest,
    messageId,
    ...(attachments
      ? {
          attachments: attachments.map((a) => ({
            filename: a.filename,
            content: Buffer.from(a.content, "base64"),
            ...(a.contentType ? { contentType: a.contentType } : {}),
            ...(a.contentId ? { contentId: a.contentId } : {}),
            ...(a.inline !== undefined ? { inline: a.inline } : {}),
          })),
        }
      : {}),
  };
}

export interface PreparedSend {
  message: StoredMessage;
  via: SendVia;
  /** SHA-256 of the request body: an Idempotency-Key reused with another body is refused. */
  fingerprint: string;
}

/**
 * Everything the schema cannot check, before anything reaches the outbox: addresses, CR/LF in the
 * subject, header names and values and file names (core's validateOutgoingMessage), base64 and sizes.
 * The Message-ID is fixed here so that a crash at any later point can be resolved by looking for it
 * in Sent Items.
 */
export function prepareSend(
  body: SendRequestBody,
  options: { maxAttachmentBytes: number; defaultFrom: string; transports: readonly string[] },
): PreparedSend {
  const via = body.via ?? "auto";
  if (via !== "auto" && !options.transports.includes(via)) {
    throw invalid(
      `via "${via}" is not configured on this server`,
      `Use "auto" or one of: ${options.transports.filter((t) => t !== "imap").join(", ")}.`,
    );
  }
  if (via === "auto" && !options.transports.includes("graph") && !options.transports.includes("smtp")) {
    throw invalid("no sending transport is configured", "Add graph or smtp to TRANSPORTS.");
  }
  if (body.text === undefined && body.html === undefined && !body.attachments?.length) {
    throw invalid("the message has no text, html or attachment", "Set text or html.");
  }
  let total = 0;
  for (const a of body.attachments ?? []) {
    if (a.content.length % 4 !== 0 || !BASE64.test(a.content)) {
      throw invalid(
        `attachment "${a.filename.replace(/[\r\n]/g, " ")}" is not valid base64`,
        "Send each attachment's bytes base64-encoded in `content`.",
      );
    }
    total += decodedLength(a.content);
  }
  if (total > options.maxAttachmentBytes) {
    throw new M365MailError(
      "MESSAGE_TOO_LARGE",
      `the attachments total ${total} bytes, over this server's limit of ${options.maxAttachmentBytes}`,
      {
        source: "server",
        hint: "Send smaller files, or raise MAX_ATTACHMENT_BYTES (Graph takes up to 150 MB per file, SMTP about 35 MB per message).",
      },
    );
  }
  checkAtTheDoor(body, via === "auto" ? (options.transports.includes("graph") ? "graph" : "smtp") : via, {
    attachmentBytes: (body.attachments ?? []).map((a) => decodedLength(a.content)),
    smtpAvailable: options.transports.includes("smtp"),
  });
  const fromAddress = body.from ? parseAddress(body.from).address : options.defaultFrom;
  const { via: _via, ...fields } = body;
  const message: StoredMessage = { ...fields, messageId: generateMessageId(fromAddress) };
  // Raises MESSAGE_INVALID with a precise message (bad address, CR/LF, malformed header).
  validateOutgoingMessage({
    ...message,
    attachments: body.attachments?.map((a) => ({ filename: a.filename, content: "" })),
  });
  const fingerprint = createHash("sha256").update(JSON.stringify(body)).digest("hex");
  return { message, via, fingerprint };
}

/** What the outbox stores for a prepared send: the JSON message as payload, its lane and Message-ID. */
export function toOutboxMessage(prepared: PreparedSend): OutboxMessage<StoredMessage> {
  return {
    messageId: prepared.message.messageId,
    // "auto" starts with Graph: it shares Graph's lane and its per-mailbox limit.
    lane: prepared.via === "smtp" ? "smtp" : "graph",
    via: prepared.via,
    ...(prepared.message.subject ? { subject: prepared.message.subject } : {}),
    fingerprint: prepared.fingerprint,
    payload: prepared.message,
  };
}
