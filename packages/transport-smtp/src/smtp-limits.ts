/**
 * What Exchange Online's SMTP submission takes, for callers that want to refuse a message before
 * queuing it (the sample server's `POST /v1/messages` does).
 * https://learn.microsoft.com/en-us/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits
 */
export const SMTP_SEND_LIMITS = {
  /**
   * The default MaxSendSize of a mailbox, 35 MB (36,700,160 bytes), counted on the message as sent:
   * base64 makes attachments about a third larger. Larger messages get `552 5.3.4`.
   */
  messageBytes: 35 * 1024 * 1024,
  /** Recipients per message (to, cc and bcc together). */
  recipients: 500,
} as const;

/**
 * About how many bytes a message takes once nodemailer has encoded it: text and HTML bodies as sent
 * (base64 when not ASCII), attachments as base64 in 76-character lines, plus room for the headers.
 */
export function estimateSmtpBytes(parts: {
  text?: string | undefined;
  html?: string | undefined;
  /** Decoded size of each attachment. */
  attachmentBytes: readonly number[];
  headerBytes?: number;
}): number {
  const body = (s: string | undefined) => {
    if (s === undefined) return 0;
    const bytes = Buffer.byteLength(s, "utf8");
    return /^[\x00-\x7f]*$/.test(s) ? bytes : base64Bytes(bytes);
  };
  const attachments = parts.attachmentBytes.reduce((sum, n) => sum + base64Bytes(n) + 300, 0);
  return body(parts.text) + body(parts.html) + attachments + (parts.headerBytes ?? 0) + 1024;
}

function base64Bytes(n: number): number {
  const encoded = Math.ceil(n / 3) * 4;
  return encoded + Math.ceil(encoded / 76) * 2;
}
