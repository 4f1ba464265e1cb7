export type { AuthFailureContext } from "./auth-failure.js";
export { explainAuthFailure } from "./auth-failure.js";
export type {
  ImapDeleteOptions,
  ImapMessageQuery,
  ImapTransport,
  ImapTransportOptions,
} from "./imap-transport.js";
export { imapTransport } from "./imap-transport.js";
export type { ImapMessageRef } from "./message-id.js";
export { formatMessageId, parseMessageId } from "./message-id.js";
export type { ImapMessage } from "./parse-message.js";
export type { ImapMessageSummary } from "./summary.js";
export type { SaslMechanism } from "./xoauth2-imap-flow.js";
