export { explainPop3AuthFailure, POP_PERMISSION, type Pop3AuthFailureContext } from "./pop3-auth-failure.js";
export {
  type ConnectPop3Options,
  connectPop3,
  Pop3Client,
  type Pop3ListEntry,
  type Pop3RetrieveOptions,
  type Pop3Security,
  type Pop3Stat,
  type Pop3UidlEntry,
} from "./pop3-client.js";
export { type Pop3Transport, type Pop3TransportOptions, pop3Transport } from "./pop3-transport.js";
