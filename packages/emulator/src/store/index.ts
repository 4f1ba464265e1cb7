export type { DeltaDiff } from "./delta-snapshots.js";
export type { MailOwner, MailOwnerOption } from "./mail-owner.js";
export {
  type CreateMailStoreOptions,
  createMailStore,
  type DeliverOptions,
  type FolderRef,
  type MailStore,
  type MessageFlagsPatch,
  type StoredFolder,
  type StoredMessage,
} from "./mail-store.js";
export { WELL_KNOWN_FOLDERS, type WellKnownFolder } from "./maildir-names.js";
