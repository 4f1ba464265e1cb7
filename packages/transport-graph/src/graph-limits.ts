import { M365MailError } from "@m365-mail/core";
import { SOURCE } from "./graph-errors.js";

/**
 * What Graph's sendMail takes, for callers that want to refuse a message before queuing it
 * (the sample server's `POST /v1/messages` does). Microsoft's numbers, with their sources.
 */
export const GRAPH_SEND_LIMITS = {
  /**
   * One request: Graph answers 413 over about 4 MB. Subject, text or HTML body, recipients and headers
   * always travel in one JSON request (sendMail, or the draft); only attachments can be uploaded apart.
   * https://learn.microsoft.com/en-us/graph/api/user-sendmail
   */
  requestBytes: 4 * 1024 * 1024,
  /** Attachments through upload sessions, up to 150 MB (Exchange Online's largest message). https://learn.microsoft.com/en-us/graph/outlook-large-attachments */
  messageBytes: 150 * 1024 * 1024,
  /** `internetMessageHeaders`: at most 5 (400 InvalidInternetMessageHeaderCollection). */
  customHeaders: 5,
  /** toRecipients + ccRecipients + bccRecipients. https://learn.microsoft.com/en-us/graph/api/resources/message */
  recipients: 500,
} as const;

/**
 * Why Graph would refuse these custom headers, or undefined when it takes them. Graph accepts only
 * names starting with "X-" (400 InvalidInternetMessageHeader, "should start with 'x-' or 'X-'") and at
 * most five of them ("Maximum number of headers in one message should be less than or equal to 5").
 */
export function graphHeaderProblem(
  headers: Readonly<Record<string, string>> | undefined,
): string | undefined {
  const names = Object.keys(headers ?? {});
  const plain = names.find((name) => !/^x-/i.test(name));
  if (plain !== undefined) return `Graph accepts only custom headers starting with "X-", not "${plain}"`;
  if (names.length > GRAPH_SEND_LIMITS.customHeaders) {
    return `Graph accepts at most ${GRAPH_SEND_LIMITS.customHeaders} custom headers, got ${names.length}`;
  }
  return undefined;
}

/** graphHeaderProblem as the error a send raises. */
export function checkGraphHeaders(headers: Readonly<Record<string, string>> | undefined): void {
  const problem = graphHeaderProblem(headers);
  if (problem === undefined) return;
  throw new M365MailError("MESSAGE_INVALID", problem, {
    source: SOURCE,
    hint: 'Use at most 5 headers named X-…, or send the message over SMTP (via: "smtp") or as raw MIME (`raw`).',
  });
}
