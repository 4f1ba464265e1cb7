import type { Logger, MailFolder, TokenProvider } from "@m365-mail/core";
import type { GraphHttp } from "./graph-http.js";

/** What the operation modules (send, folders, delta, calendar, verify) share. */
export interface GraphContext {
  readonly name: string;
  readonly http: GraphHttp;
  readonly auth: TokenProvider;
  /** "/me", or "/users/{address}" for another (shared) mailbox. */
  readonly mailboxPath: string;
  /** The mailbox address the transport works on. */
  readonly mailbox: string;
  /** Set when the mailbox is not the signed-in user's own: permissions then need `.Shared`. */
  readonly sharedMailbox: string | undefined;
  readonly graphResource: string;
  readonly sentItemsLookupMs: number;
  readonly uncertainSends: "check-then-resend" | "report";
  readonly watchIntervalMs: number;
  readonly log: Logger;
  /** Folder list cache for resolving paths to ids. */
  folderCache: { folders: MailFolder[]; at: number } | undefined;
}
