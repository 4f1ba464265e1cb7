import { type AddressInput, M365MailError } from "@m365-mail/core";
import { GRAPH_SEND_LIMITS, graphHeaderProblem } from "@m365-mail/transport-graph";
import { estimateSmtpBytes, SMTP_SEND_LIMITS } from "@m365-mail/transport-smtp";
import type { SendRequestBody } from "./send-request.js";

function invalid(message: string, hint: string): M365MailError {
  return new M365MailError("MESSAGE_INVALID", message, { source: "server", hint });
}

function tooLarge(message: string, hint: string): M365MailError {
  return new M365MailError("MESSAGE_TOO_LARGE", message, { source: "server", hint });
}

/** Microsoft 365 takes at most this many recipients per message, to, cc and bcc together (Graph and SMTP). */
export const MAX_RECIPIENTS = 500;

/** Headers the message's own fields write: set as custom headers they would clash with them. */
const STRUCTURAL_HEADERS = new Set([
  "from",
  "sender",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-disposition",
]);

const count = (list: AddressInput | AddressInput[] | undefined) =>
  list === undefined ? 0 : Array.isArray(list) ? list.length : 1;

/**
 * What Microsoft 365 would refuse for sure, refused before the message is stored: more than 500
 * recipients, headers the transport cannot send, a message over the transport's size limit. `first` is
 * the transport a send tries first ("auto" tries Graph first and falls back to SMTP only when Graph
 * refuses before anything was submitted, which a message it cannot take does not cause).
 */
export function checkAtTheDoor(
  body: SendRequestBody,
  first: "graph" | "smtp",
  context: { attachmentBytes: readonly number[]; smtpAvailable: boolean },
): void {
  const to = count(body.to);
  const cc = count(body.cc);
  const bcc = count(body.bcc);
  if (to + cc + bcc > MAX_RECIPIENTS) {
    throw invalid(
      `the message has ${to + cc + bcc} recipients (to ${to}, cc ${cc}, bcc ${bcc}); Microsoft 365 takes at most ${MAX_RECIPIENTS} per message, to, cc and bcc together`,
      `Split the recipients over several messages of at most ${MAX_RECIPIENTS} each.`,
    );
  }
  const headers = body.headers ?? {};
  const clash = Object.keys(headers).find((name) => STRUCTURAL_HEADERS.has(name.toLowerCase()));
  if (clash !== undefined) {
    throw invalid(
      `header "${clash}" is written from the message's own fields and cannot be set as a custom header`,
      "Use the from, to, cc, bcc, replyTo and subject fields; name custom headers X-….",
    );
  }
  const attachments = context.attachmentBytes.reduce((sum, n) => sum + n, 0);
  if (first === "graph") {
    const problem = graphHeaderProblem(headers);
    if (problem) {
      throw invalid(
        problem,
        `Use at most ${GRAPH_SEND_LIMITS.customHeaders} headers named X-…${context.smtpAvailable ? ', or send with "via": "smtp"' : ""}.`,
      );
    }
    // Subject, body, recipients and headers travel in one JSON request whatever the attachments do.
    const inOneRequest = Buffer.byteLength(
      JSON.stringify({
        subject: body.subject,
        body: body.html ?? body.text,
        to: body.to,
        cc: body.cc,
        bcc: body.bcc,
        replyTo: body.replyTo,
        headers,
      }),
      "utf8",
    );
    if (inOneRequest > GRAPH_SEND_LIMITS.requestBytes) {
      throw tooLarge(
        `the text or HTML body, subject, recipients and headers take ${inOneRequest} bytes; Graph takes them in one request of at most ${GRAPH_SEND_LIMITS.requestBytes} bytes (4 MB)`,
        `Move large content into an attachment (Graph uploads those in parts)${context.smtpAvailable ? ', or send with "via": "smtp"' : ""}.`,
      );
    }
    if (inOneRequest + attachments > GRAPH_SEND_LIMITS.messageBytes) {
      throw tooLarge(
        `the message is ${inOneRequest + attachments} bytes, over Graph's limit of ${GRAPH_SEND_LIMITS.messageBytes} (150 MB)`,
        "Send smaller attachments, or share large files by link.",
      );
    }
    return;
  }
  const estimate = estimateSmtpBytes({
    text: body.text,
    html: body.html,
    attachmentBytes: context.attachmentBytes,
    headerBytes: Buffer.byteLength(
      JSON.stringify([body.subject, body.to, body.cc, body.bcc, headers]),
      "utf8",
    ),
  });
  if (estimate > SMTP_SEND_LIMITS.messageBytes) {
    throw tooLarge(
      `the message is about ${estimate} bytes once encoded for SMTP (text, HTML and base64 attachments), over Exchange Online's limit of ${SMTP_SEND_LIMITS.messageBytes} (35 MB)`,
      'Send it with "via": "graph" (up to 150 MB, attachments uploaded in parts), or send smaller attachments.',
    );
  }
}
