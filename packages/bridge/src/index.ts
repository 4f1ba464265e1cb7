export * from "./accounts.js";
export * from "./bridge-command.js";
export * from "./bridge-doctor.js";
export * from "./config.js";
export * from "./config-schema.js";
export * from "./console-logger.js";
export * from "./credentials.js";
export * from "./device-code-login.js";
export type {
  Authenticate,
  BridgeProtocol,
  ClientInfo,
  FrontDoor,
  FrontDoorLimits,
  FrontDoorOptions,
  ListenerSecurity,
  SessionRecord,
  SignedIn,
  UpstreamEndpoint,
} from "./front-door.js";
export { startImapFrontDoor } from "./imap/imap-front-door.js";
export * from "./lockout-guard.js";
export * from "./metrics.js";
export * from "./network.js";
export * from "./password-keyed-cache.js";
export { startPop3FrontDoor } from "./pop3/pop3-front-door.js";
export {
  createUpstreamThrottling,
  type ThrottledMailbox,
  type UpstreamThrottling,
} from "./relay/upstream-throttling.js";
export { hashSecret, verifySecret } from "./secret-hash.js";
export * from "./sign-in-problems.js";
export * from "./smtp/deliver.js";
export * from "./smtp/smtp-front-door.js";
export * from "./smtp/smtp-replies.js";
export * from "./smtp/spool.js";
export * from "./start-bridge.js";
export * from "./tls-material.js";
