export { type SmtpEmulatorPart, type SmtpPartOptions, smtpPart } from "./smtp-emulator-part.js";
export { DEFAULT_SMTP_LIMITS, type SmtpLimits } from "./smtp-limits.js";
export type { SmtpDeliveryFolder, SmtpMailSink, SmtpPartStats } from "./smtp-part.js";
export { SMTP_SERVER_NAME, type SmtpReply, smtpReplies } from "./smtp-replies.js";
