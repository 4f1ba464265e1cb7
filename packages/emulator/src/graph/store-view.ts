import { M365MailError } from "@m365-mail/core";
import type { ParsedMail } from "mailparser";
import type { MailStore, StoredFolder, StoredMessage } from "../store/index.js";
import { folderPathOfId } from "../store/maildir-names.js";
import { notFound } from "./graph-error.js";
import { syncStateNotFound } from "./mail/delta.js";
import type {
  AppendOptions,
  FolderInfo,
  MailboxDelta,
  MailboxView,
  MessageRecord,
  WellKnownFolder,
} from "./mailbox-view.js";
import { parseMime } from "./mime.js";

/** Graph's hidden root of the folder tree ("Top of Information Store"); never a store path (it holds \0). */
export const ROOT_FOLDER_ID = Buffer.from("\0msgfolderroot").toString("base64url");

const WELL_KNOWN = new Set<string>(["inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"]);
const PARSED_CACHE_SIZE = 512;

/**
 * The Graph view of the emulator's one mailbox store: the store's stable ids are Graph's ids, folders
 * are reached by id or Graph well-known name only (never by display path, as in Graph), and parsed
 * MIME is cached by change key.
 */
export class StoreMailboxView implements MailboxView {
  private readonly parsedCache = new Map<string, Promise<ParsedMail>>();

  constructor(private readonly store: MailStore) {}

  async folders(upn: string): Promise<FolderInfo[]> {
    const folders = await this.call(() => this.store.listFolders(upn));
    return folders.map(toFolderInfo);
  }

  async folder(upn: string, idOrName: string): Promise<FolderInfo | undefined> {
    const lower = idOrName.toLowerCase();
    if (lower === "msgfolderroot" || idOrName === ROOT_FOLDER_ID) {
      const folders = await this.folders(upn);
      const top = folders.filter((folder) => folder.isTopLevel);
      return {
        id: ROOT_FOLDER_ID,
        displayName: "Top of Information Store",
        parentFolderId: ROOT_FOLDER_ID,
        childFolderCount: top.length,
        unreadItemCount: 0,
        totalItemCount: 0,
        isHidden: false,
        isTopLevel: false,
      };
    }
    // Graph takes ids and well-known names; a display path ("Inbox/Receipts") is not an id there.
    if (!WELL_KNOWN.has(lower) && folderPathOfId(idOrName) === undefined) return undefined;
    const folder = await this.call(() =>
      this.store.findFolder(upn, WELL_KNOWN.has(lower) ? lower : idOrName),
    );
    return folder ? toFolderInfo(folder) : undefined;
  }

  async messages(upn: string, folderId?: string): Promise<MessageRecord[]> {
    if (folderId !== undefined) {
      const stored = await this.call(() => this.store.list(upn, folderId));
      return stored.map((message) => this.record(upn, message));
    }
    const folders = await this.call(() => this.store.listFolders(upn));
    const all: MessageRecord[] = [];
    for (const folder of folders) {
      const stored = await this.call(() => this.store.list(upn, folder.id));
      for (const message of stored) all.push(this.record(upn, message));
    }
    return all;
  }

  async message(upn: string, id: string): Promise<MessageRecord | undefined> {
    try {
      const stored = await this.store.get(upn, id);
      // An id from before an IMAP move resolves to the moved message: Graph answers 404 for it.
      return stored.id === id ? this.record(upn, stored) : undefined;
    } catch (error) {
      if (error instanceof M365MailError && (error.code === "NOT_FOUND" || error.code === "CONFIG_INVALID"))
        return undefined;
      throw error;
    }
  }

  async append(
    upn: string,
    folder: string,
    raw: Buffer,
    options: AppendOptions = {},
  ): Promise<MessageRecord> {
    const stored = await this.call(() =>
      this.store.deliver(upn, folder, raw, {
        seen: options.isRead ?? false,
        draft: options.isDraft ?? false,
        ...(options.receivedAt ? { receivedAt: options.receivedAt } : {}),
      }),
    );
    return this.record(upn, stored);
  }

  async setRead(upn: string, id: string, isRead: boolean): Promise<MessageRecord> {
    return this.record(upn, await this.call(() => this.store.setSeen(upn, id, isRead)));
  }

  async setFlagged(upn: string, id: string, isFlagged: boolean): Promise<MessageRecord> {
    return this.record(upn, await this.call(() => this.store.setFlags(upn, id, { flagged: isFlagged })));
  }

  async move(upn: string, id: string, destinationFolderId: string): Promise<MessageRecord> {
    return this.record(upn, await this.call(() => this.store.move(upn, id, destinationFolderId)));
  }

  async remove(upn: string, id: string): Promise<void> {
    await this.call(() => this.store.delete(upn, id));
  }

  async replace(upn: string, id: string, raw: Buffer): Promise<MessageRecord> {
    return this.record(upn, await this.call(() => this.store.replace(upn, id, raw)));
  }

  async delta(upn: string, folderId: string, token: string | undefined): Promise<MailboxDelta> {
    try {
      const diff = await this.store.delta(upn, folderId, token);
      return {
        created: diff.created.map((message) => this.record(upn, message)),
        updated: diff.updated.map((message) => this.record(upn, message)),
        deleted: diff.deleted,
        token: diff.token,
      };
    } catch (error) {
      if (error instanceof M365MailError && error.serverCode === "SyncStateNotFound")
        throw syncStateNotFound();
      throw this.translate(error);
    }
  }

  private record(upn: string, message: StoredMessage): MessageRecord {
    let raw: Promise<Buffer> | undefined;
    const readRaw = () => {
      raw ??= this.call(() => this.store.read(upn, message.id)).then((result) => result.raw);
      return raw;
    };
    const key = `${upn.toLowerCase()}\0${message.id}\0${message.changeKey}`;
    return {
      id: message.id,
      folderId: message.folderId,
      isRead: message.seen,
      isDraft: message.draft,
      isFlagged: message.flagged,
      receivedAt: message.receivedAt,
      modifiedAt: message.receivedAt,
      version: message.changeKey,
      size: message.size,
      raw: readRaw,
      parsed: () => {
        let parsed = this.parsedCache.get(key);
        if (!parsed) {
          parsed = readRaw().then(parseMime);
          parsed.catch(() => this.parsedCache.delete(key));
          this.parsedCache.set(key, parsed);
          if (this.parsedCache.size > PARSED_CACHE_SIZE) {
            this.parsedCache.delete(this.parsedCache.keys().next().value!);
          }
        }
        return parsed;
      },
    };
  }

  private async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** Store errors in Graph's words: a missing item is 404 ErrorItemNotFound. */
  private translate(error: unknown): unknown {
    if (error instanceof M365MailError && error.code === "NOT_FOUND") return notFound();
    return error;
  }
}

function toFolderInfo(folder: StoredFolder): FolderInfo {
  return {
    id: folder.id,
    displayName: folder.name,
    parentFolderId: folder.parentId ?? ROOT_FOLDER_ID,
    childFolderCount: folder.childFolderCount,
    unreadItemCount: folder.unreadCount,
    totalItemCount: folder.totalCount,
    isHidden: false,
    isTopLevel: folder.parentId === undefined,
    ...(folder.wellKnownName ? { wellKnownName: folder.wellKnownName as WellKnownFolder } : {}),
  };
}
