export {
  type DovecotProtocol,
  EXCHANGE_IMAP_CAPABILITY,
  EXCHANGE_SASL_MECHANISMS,
} from "./dovecot-config.js";
export { type DovecotPart, type DovecotPartOptions, dovecotPart } from "./dovecot-part.js";
export {
  DOVECOT_INSTALL_HINT,
  type DovecotInstallation,
  findDovecot,
  inspectDovecot,
} from "./find-dovecot.js";
export { type DovecotServer, type StartDovecotOptions, startDovecot } from "./start-dovecot.js";
