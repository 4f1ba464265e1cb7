/**
 * The emulator's one mailbox store: per-user Maildir++ folders that Graph and SMTP write through this
 * API and that Dovecot serves over IMAP and POP3 at the same time. Everything is derived from the files
 * on each call (no database), so changes made over IMAP — flags, moves, expunges — show up here at once.
 */
import { createHash } from "node:crypto";
import type { Stats } from "node:fs";
import {
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Logger, M365MailError, type SpecialFolder, safeLogger } from "@m365-mail/core";
import { computeDelta, type DeltaDiff } from "./delta-snapshots.js";
import { applyOwner, type MailOwner, type MailOwnerOption, resolveMailOwner } from "./mail-owner.js";
import {
  folderDirName,
  folderIdOf,
  folderPathOfDir,
  folderPathOfId,
  INBOX_PATH,
  messageIdOf,
  newUniqueName,
  normalizeFolderPath,
  parseMaildirFileName,
  parseMessageId,
  STORE_SOURCE,
  sortFlags,
  subscriptionLine,
  WELL_KNOWN_FOLDERS,
  wellKnownFolder,
  withFlag,
} from "./maildir-names.js";

export interface CreateMailStoreOptions {
  /** The emulator's data folder. Mailboxes live in `<root>/mail/<upn>/Maildir`. */
  root: string;
  /**
   * Owner of the files the store writes. Dovecot's mail processes run as this user.
   * @default "auto" — the `mail` user (uid 8 on Debian) when running as root, else the process' user
   */
  owner?: MailOwnerOption;
  /** Receives debug lines; passed through core's safeLogger. */
  logger?: Logger;
}

export interface StoredFolder {
  /** base64url of the path: stable as long as the folder keeps its name. */
  id: string;
  /** Last path segment, e.g. "Receipts". */
  name: string;
  /** Exchange display path with "/" separators, e.g. "Inbox/Receipts". */
  path: string;
  /** Undefined for top-level folders (Graph: the hidden msgfolderroot). */
  parentId?: string;
  specialUse?: SpecialFolder;
  /** Graph's well-known name ("inbox", "sentitems", ...). */
  wellKnownName?: string;
  childFolderCount: number;
  totalCount: number;
  unreadCount: number;
  /** Changes whenever name or counts change (used by folder delta). */
  changeKey: string;
}

export interface StoredMessage {
  /** Stable across flag changes (also Dovecot's renames); a move gives a new id, as Graph does. */
  id: string;
  folderId: string;
  folderPath: string;
  /** The Maildir file name including `:2,<flags>`. */
  filename: string;
  /** Bytes of the stored RFC 5322 source. */
  size: number;
  /** The file's mtime, which Dovecot reports as IMAP INTERNALDATE. */
  receivedAt: Date;
  seen: boolean;
  flagged: boolean;
  answered: boolean;
  draft: boolean;
  /** Raw Maildir flag letters (uppercase system flags, lowercase Dovecot keywords). */
  flags: string;
  /** Changes whenever flags or content change (Graph changeKey; used by delta). */
  changeKey: string;
}

export interface DeliverOptions {
  /** @default false */
  seen?: boolean;
  /** @default false */
  flagged?: boolean;
  /** @default false */
  draft?: boolean;
  /** @default now */
  receivedAt?: Date;
}

export interface MessageFlagsPatch {
  seen?: boolean;
  flagged?: boolean;
  answered?: boolean;
  draft?: boolean;
}

/**
 * Where a folder argument is accepted, any of: a folder id, a path ("Inbox/Receipts", "sent items"),
 * or a Graph well-known name ("inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive").
 */
export type FolderRef = string;

export interface MailStore {
  /** `<root>/mail`; Dovecot's mail_location points below it. */
  readonly mailRoot: string;
  readonly owner: MailOwner;
  /** The Maildir of a user (it may not exist yet). */
  maildirOf(upn: string): string;
  /** Creates `mailRoot`, owned by the mail owner (Dovecot creates new users' Maildirs in it). */
  ensureRoot(): Promise<void>;
  /** Creates the Maildir and Exchange's well-known folders; cheap when they exist. */
  ensureMailbox(upn: string): Promise<void>;
  listFolders(upn: string): Promise<StoredFolder[]>;
  /** Undefined when no such folder exists. */
  findFolder(upn: string, ref: FolderRef): Promise<StoredFolder | undefined>;
  /** Throws NOT_FOUND (serverCode ErrorItemNotFound) when no such folder exists. */
  getFolder(upn: string, ref: FolderRef): Promise<StoredFolder>;
  /** Creates the folder and missing parents; returns the existing folder when it is there already. */
  createFolder(upn: string, path: string): Promise<StoredFolder>;
  /** Removes a folder with its messages and subfolders. Well-known folders cannot be deleted. */
  deleteFolder(upn: string, ref: FolderRef): Promise<void>;
  /** Stores a message (tmp/ then an atomic rename into new/ or cur/). */
  deliver(upn: string, folder: FolderRef, raw: Uint8Array, options?: DeliverOptions): Promise<StoredMessage>;
  /** Messages of one folder, newest first. */
  list(upn: string, folder: FolderRef): Promise<StoredMessage[]>;
  /**
   * A message by id. After a move over IMAP an old id still resolves: the result then carries the
   * message's new id (compare `message.id` with the id asked for to answer 404 as Graph would).
   */
  get(upn: string, id: string): Promise<StoredMessage>;
  read(upn: string, id: string): Promise<{ message: StoredMessage; raw: Buffer }>;
  setSeen(upn: string, id: string, seen: boolean): Promise<StoredMessage>;
  setFlags(upn: string, id: string, patch: MessageFlagsPatch): Promise<StoredMessage>;
  /** Moves into another folder; the message gets a new id there (Graph does the same). */
  move(upn: string, id: string, to: FolderRef): Promise<StoredMessage>;
  /** Copies into another folder under a new id. */
  copy(upn: string, id: string, to: FolderRef): Promise<StoredMessage>;
  /** Rewrites a message's content (Graph PATCH of a draft); the id stays. */
  replace(upn: string, id: string, raw: Uint8Array): Promise<StoredMessage>;
  /** Deletes the file for good (Graph's DELETE moves to Deleted Items instead: use `move`). */
  delete(upn: string, id: string): Promise<void>;
  /**
   * Graph delta for a folder's messages: without a token every message is "created"; with the token
   * of the previous answer, what changed since (from any protocol). Unknown token: NOT_FOUND with
   * serverCode "SyncStateNotFound".
   */
  delta(upn: string, folder: FolderRef, token?: string): Promise<DeltaDiff<StoredMessage>>;
  /** The same for the folder list. */
  folderDelta(upn: string, token?: string): Promise<DeltaDiff<StoredFolder>>;
}

interface Located {
  folderPath: string;
  /** Absolute path of the folder's Maildir directory. */
  dir: string;
  sub: "new" | "cur";
  name: string;
}

const UPN = /^[^\s/\\\0:]+$/;

function hashKey(text: string): string {
  return createHash("sha256").update(text).digest("base64url").slice(0, 16);
}

function notFound(what: string): M365MailError {
  return new M365MailError("NOT_FOUND", `${what} was not found in the mailbox store`, {
    source: STORE_SOURCE,
    serverCode: "ErrorItemNotFound",
    hint: "List the folder again: the item may have been moved or deleted (also over IMAP or POP3).",
  });
}

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

function storeFailure(operation: string, error: unknown): M365MailError {
  if (error instanceof M365MailError) return error;
  const denied = isErrno(error, "EACCES") || isErrno(error, "EPERM");
  return new M365MailError(denied ? "CONFIG_INVALID" : "SERVER_ERROR", `mail store could not ${operation}`, {
    source: STORE_SOURCE,
    cause: error,
    hint: denied
      ? "The emulator's data folder must be writable by the emulator, and its mail folder by the mail owner (run as root or as the data folder's owner)."
      : undefined,
  });
}

export function createMailStore(options: CreateMailStoreOptions): MailStore {
  const mailRoot = join(options.root, "mail");
  const owner = resolveMailOwner(options.owner);
  const log = safeLogger(options.logger, "store");
  const ensured = new Set<string>();
  // id → where the file was last seen; checked before use, since Dovecot renames files.
  const located = new Map<string, Located>();

  function normalizeUpn(upn: string): string {
    const lower = upn.trim().toLowerCase();
    if (!UPN.test(lower) || lower.startsWith(".")) {
      throw new M365MailError("CONFIG_INVALID", `"${upn}" is not a mailbox address`, {
        source: STORE_SOURCE,
        hint: "Use the user's UPN, e.g. support@contoso.com.",
      });
    }
    return lower;
  }

  const homeOf = (upn: string) => join(mailRoot, normalizeUpn(upn));
  const maildirOf = (upn: string) => join(homeOf(upn), "Maildir");
  const folderDir = (upn: string, path: string) => join(maildirOf(upn), folderDirName(path));

  /** mkdir that chowns every level it creates (mkdir -p would leave root-owned parents). */
  async function ensureDir(path: string): Promise<void> {
    try {
      await mkdir(path, { mode: 0o700 });
      await applyOwner(path, owner);
    } catch (error) {
      if (isErrno(error, "EEXIST")) return;
      if (!isErrno(error, "ENOENT") || dirname(path) === path) throw error;
      await ensureDir(dirname(path));
      await ensureDir(path);
    }
  }

  async function ensureFolderDirs(upn: string, path: string): Promise<string> {
    const dir = folderDir(upn, path);
    for (const sub of ["cur", "new", "tmp"]) await ensureDir(join(dir, sub));
    if (path !== INBOX_PATH) {
      // Maildir++ marks folders with an empty `maildirfolder` file (Dovecot writes it as well).
      const marker = join(dir, "maildirfolder");
      await writeFile(marker, "", { flag: "a", mode: 0o600 });
      await applyOwner(marker, owner);
    }
    return dir;
  }

  async function subscribe(upn: string, path: string): Promise<void> {
    const file = join(maildirOf(upn), "subscriptions");
    const line = subscriptionLine(path);
    let text = await readFile(file, "utf8").catch(() => "");
    if (!text.startsWith("V\t2\n\n")) text = "V\t2\n\n";
    if (text.split("\n").includes(line)) return;
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${text}${line}\n`, { mode: 0o600 });
    await applyOwner(tmp, owner);
    await rename(tmp, file);
  }

  async function ensureRoot(): Promise<void> {
    try {
      await ensureDir(mailRoot);
      await applyOwner(mailRoot, owner);
    } catch (error) {
      throw storeFailure(`create ${mailRoot}`, error);
    }
  }

  async function ensureMailbox(upn: string): Promise<void> {
    const key = normalizeUpn(upn);
    if (ensured.has(key)) return;
    try {
      await ensureDir(mailRoot);
      await ensureDir(homeOf(key));
      for (const folder of WELL_KNOWN_FOLDERS) await ensureFolderDirs(key, folder.path);
    } catch (error) {
      throw storeFailure(`create the mailbox of ${key}`, error);
    }
    ensured.add(key);
    log.debug("mailbox ready", { upn: key });
  }

  async function countMessages(dir: string): Promise<{ total: number; unread: number }> {
    let total = 0;
    let unread = 0;
    for (const sub of ["new", "cur"]) {
      const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
      for (const name of names) {
        const parsed = parseMaildirFileName(name);
        if (!parsed) continue;
        total++;
        if (!parsed.flags.includes("S")) unread++;
      }
    }
    return { total, unread };
  }

  async function folderPaths(upn: string): Promise<string[]> {
    const entries = await readdir(maildirOf(upn), { withFileTypes: true });
    const paths = new Set<string>([INBOX_PATH]);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = folderPathOfDir(entry.name);
      if (!path) continue;
      // Dovecot creates "A/B" as `.A.B` alone: show the implied parents as folders too.
      const segments = path.split("/");
      for (let i = 1; i <= segments.length; i++) paths.add(segments.slice(0, i).join("/"));
    }
    const order = (p: string) => {
      const index = WELL_KNOWN_FOLDERS.findIndex((f) => f.path === p.split("/")[0]);
      return index === -1 ? WELL_KNOWN_FOLDERS.length : index;
    };
    return [...paths].sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  }

  async function describeFolder(upn: string, path: string, all: readonly string[]): Promise<StoredFolder> {
    const counts = await countMessages(folderDir(upn, path));
    const cut = path.lastIndexOf("/");
    const known = wellKnownFolder(path);
    const childFolderCount = all.filter(
      (p) => p.startsWith(`${path}/`) && !p.slice(path.length + 1).includes("/"),
    ).length;
    const folder: StoredFolder = {
      id: folderIdOf(path),
      name: cut === -1 ? path : path.slice(cut + 1),
      path,
      childFolderCount,
      totalCount: counts.total,
      unreadCount: counts.unread,
      changeKey: hashKey(`${path}|${childFolderCount}|${counts.total}|${counts.unread}`),
    };
    if (cut !== -1) folder.parentId = folderIdOf(path.slice(0, cut));
    if (known) {
      folder.specialUse = known.specialUse;
      folder.wellKnownName = known.wellKnownName;
    }
    return folder;
  }

  async function listFolders(upn: string): Promise<StoredFolder[]> {
    await ensureMailbox(upn);
    try {
      const paths = await folderPaths(upn);
      return await Promise.all(paths.map((p) => describeFolder(upn, p, paths)));
    } catch (error) {
      throw storeFailure("list folders", error);
    }
  }

  /** Resolves a folder reference to a canonical path, without checking that it exists. */
  function refToPath(ref: FolderRef): string[] {
    const candidates: string[] = [];
    const known = WELL_KNOWN_FOLDERS.find((f) => f.wellKnownName === ref.toLowerCase());
    if (known) candidates.push(known.path);
    const fromId = folderPathOfId(ref);
    if (fromId) candidates.push(fromId);
    try {
      candidates.push(normalizeFolderPath(ref));
    } catch {
      // not a path either
    }
    return candidates;
  }

  /** The folder's canonical path and its siblings, without counting messages (delivery's hot path). */
  async function resolveFolder(
    upn: string,
    ref: FolderRef,
  ): Promise<{ path: string; all: string[] } | undefined> {
    await ensureMailbox(upn);
    const all = await folderPaths(upn).catch((error) => {
      throw storeFailure("list folders", error);
    });
    const path = refToPath(ref).find((candidate) => all.includes(candidate));
    return path === undefined ? undefined : { path, all };
  }

  async function findFolder(upn: string, ref: FolderRef): Promise<StoredFolder | undefined> {
    const found = await resolveFolder(upn, ref);
    return found && describeFolder(upn, found.path, found.all);
  }

  async function getFolder(upn: string, ref: FolderRef): Promise<StoredFolder> {
    const folder = await findFolder(upn, ref);
    if (!folder) throw notFound(`folder "${ref}"`);
    return folder;
  }

  async function folderPathOf(upn: string, ref: FolderRef): Promise<string> {
    const found = await resolveFolder(upn, ref);
    if (!found) throw notFound(`folder "${ref}"`);
    return found.path;
  }

  async function createFolder(upn: string, path: string): Promise<StoredFolder> {
    await ensureMailbox(upn);
    const canonical = normalizeFolderPath(path);
    const segments = canonical.split("/");
    try {
      for (let i = 1; i <= segments.length; i++) {
        const step = segments.slice(0, i).join("/");
        await ensureFolderDirs(upn, step);
        if (step !== INBOX_PATH) await subscribe(upn, step);
      }
    } catch (error) {
      throw storeFailure(`create folder "${canonical}"`, error);
    }
    log.debug("folder created", { upn, path: canonical });
    return getFolder(upn, canonical);
  }

  async function deleteFolder(upn: string, ref: FolderRef): Promise<void> {
    const folder = await getFolder(upn, ref);
    if (folder.path === INBOX_PATH || wellKnownFolder(folder.path)) {
      throw new M365MailError(
        "ACCESS_DENIED",
        `"${folder.path}" is a well-known folder and cannot be deleted`,
        {
          source: STORE_SOURCE,
          serverCode: "ErrorDeleteDistinguishedFolder",
        },
      );
    }
    const paths = await folderPaths(upn);
    for (const path of paths.filter((p) => p === folder.path || p.startsWith(`${folder.path}/`))) {
      await rm(folderDir(upn, path), { recursive: true, force: true });
    }
  }

  function toMessage(folderPath: string, name: string, stats: Stats): StoredMessage {
    const parsed = parseMaildirFileName(name)!;
    const flags = parsed.flags;
    return {
      id: messageIdOf(folderPath, parsed.idKey),
      folderId: folderIdOf(folderPath),
      folderPath,
      filename: name,
      size: stats.size,
      receivedAt: stats.mtime,
      seen: flags.includes("S"),
      flagged: flags.includes("F"),
      answered: flags.includes("R"),
      draft: flags.includes("D"),
      flags,
      changeKey: hashKey(`${flags}|${stats.size}|${parsed.base}`),
    };
  }

  /** Lists one folder; Dovecot may rename a file between readdir and stat, so such files are re-read. */
  async function scanFolder(upn: string, folderPath: string): Promise<StoredMessage[]> {
    const dir = folderDir(upn, folderPath);
    for (let attempt = 0; ; attempt++) {
      const out: StoredMessage[] = [];
      let raced = false;
      for (const sub of ["new", "cur"] as const) {
        const names = await readdir(join(dir, sub)).catch((error) => {
          if (isErrno(error, "ENOENT")) return [] as string[];
          throw error;
        });
        for (const name of names) {
          if (!parseMaildirFileName(name)) continue;
          try {
            const message = toMessage(folderPath, name, await lstat(join(dir, sub, name)));
            located.set(`${normalizeUpn(upn)}\0${message.id}`, { folderPath, dir, sub, name });
            out.push(message);
          } catch (error) {
            if (!isErrno(error, "ENOENT")) throw error;
            raced = true;
          }
        }
      }
      if (!raced || attempt >= 3) {
        return out.sort(
          (a, b) => b.receivedAt.getTime() - a.receivedAt.getTime() || b.filename.localeCompare(a.filename),
        );
      }
    }
  }

  async function findIn(
    dir: string,
    idKey: string,
  ): Promise<{ sub: "new" | "cur"; name: string } | undefined> {
    for (const sub of ["cur", "new"] as const) {
      const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
      const name = names.find((n) => parseMaildirFileName(n)?.idKey === idKey);
      if (name) return { sub, name };
    }
    return undefined;
  }

  async function locate(upn: string, id: string): Promise<Located> {
    const parsed = parseMessageId(id);
    if (!parsed) throw notFound(`message ${id}`);
    const cacheKey = `${normalizeUpn(upn)}\0${id}`;
    const cached = located.get(cacheKey);
    if (cached) {
      const exists = await lstat(join(cached.dir, cached.sub, cached.name)).then(
        () => true,
        () => false,
      );
      if (exists) return cached;
      located.delete(cacheKey);
    }
    const home = folderDir(upn, parsed.folderPath);
    const hit = await findIn(home, parsed.idKey);
    if (hit) return { folderPath: parsed.folderPath, dir: home, ...hit };
    // Moved over IMAP: Dovecot keeps the file name, so look in the other folders.
    const paths = await folderPaths(upn).catch(() => [] as string[]);
    for (const path of paths) {
      if (path === parsed.folderPath) continue;
      const dir = folderDir(upn, path);
      const other = await findIn(dir, parsed.idKey);
      if (other) return { folderPath: path, dir, ...other };
    }
    throw notFound(`message ${id}`);
  }

  async function describe(at: Located): Promise<StoredMessage> {
    return toMessage(at.folderPath, at.name, await lstat(join(at.dir, at.sub, at.name)));
  }

  /** Runs an operation on a located file, locating it again when Dovecot renamed it meanwhile. */
  async function withLocated<T>(
    upn: string,
    id: string,
    operation: string,
    fn: (at: Located) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const at = await locate(upn, id);
      try {
        return await fn(at);
      } catch (error) {
        if (isErrno(error, "ENOENT") && attempt < 3) {
          located.delete(`${normalizeUpn(upn)}\0${id}`);
          continue;
        }
        throw storeFailure(operation, error);
      }
    }
  }

  async function deliver(
    upn: string,
    folder: FolderRef,
    raw: Uint8Array,
    options: DeliverOptions = {},
  ): Promise<StoredMessage> {
    await ensureMailbox(upn);
    const folderPath = await folderPathOf(upn, folder);
    try {
      const dir = await ensureFolderDirs(upn, folderPath);
      const base = `${newUniqueName()},S=${raw.byteLength}`;
      const tmp = join(dir, "tmp", base);
      await writeFile(tmp, raw, { flag: "wx", mode: 0o600 });
      await applyOwner(tmp, owner);
      const receivedAt = options.receivedAt ?? new Date();
      await utimes(tmp, receivedAt, receivedAt);
      let flags = "";
      if (options.seen) flags += "S";
      if (options.flagged) flags += "F";
      if (options.draft) flags += "D";
      flags = sortFlags(flags);
      const at: Located = flags
        ? { folderPath, dir, sub: "cur", name: `${base}:2,${flags}` }
        : { folderPath, dir, sub: "new", name: base };
      // Describe from tmp/: once in new/, Dovecot may already have moved it to cur/ under another name.
      const message = toMessage(folderPath, at.name, await lstat(tmp));
      await rename(tmp, join(dir, at.sub, at.name));
      located.set(`${normalizeUpn(upn)}\0${message.id}`, at);
      log.debug("delivered", { upn, folder: folderPath, size: raw.byteLength });
      return message;
    } catch (error) {
      throw storeFailure(`deliver to "${folderPath}"`, error);
    }
  }

  async function list(upn: string, folder: FolderRef): Promise<StoredMessage[]> {
    const folderPath = await folderPathOf(upn, folder);
    try {
      return await scanFolder(upn, folderPath);
    } catch (error) {
      throw storeFailure(`list "${folderPath}"`, error);
    }
  }

  async function get(upn: string, id: string): Promise<StoredMessage> {
    return withLocated(upn, id, "read a message", describe);
  }

  async function read(upn: string, id: string): Promise<{ message: StoredMessage; raw: Buffer }> {
    return withLocated(upn, id, "read a message", async (at) => {
      const file = join(at.dir, at.sub, at.name);
      const raw = await readFile(file);
      return { message: await describe(at), raw };
    });
  }

  async function setFlags(upn: string, id: string, patch: MessageFlagsPatch): Promise<StoredMessage> {
    return withLocated(upn, id, "change message flags", async (at) => {
      const parsed = parseMaildirFileName(at.name)!;
      let flags = parsed.flags;
      if (patch.seen !== undefined) flags = withFlag(flags, "S", patch.seen);
      if (patch.flagged !== undefined) flags = withFlag(flags, "F", patch.flagged);
      if (patch.answered !== undefined) flags = withFlag(flags, "R", patch.answered);
      if (patch.draft !== undefined) flags = withFlag(flags, "D", patch.draft);
      const name = `${parsed.base}:2,${flags}`;
      if (name === at.name && at.sub === "cur") return describe(at);
      // Same rename Dovecot does on STORE: the base stays, the flags after ":2," change.
      const next: Located = { ...at, sub: "cur", name };
      await rename(join(at.dir, at.sub, at.name), join(at.dir, "cur", name));
      located.set(`${normalizeUpn(upn)}\0${id}`, next);
      return describe(next);
    });
  }

  async function move(upn: string, id: string, to: FolderRef): Promise<StoredMessage> {
    const toPath = await folderPathOf(upn, to);
    return withLocated(upn, id, `move a message to "${toPath}"`, async (at) => {
      if (at.folderPath === toPath) return describe(at);
      const dir = await ensureFolderDirs(upn, toPath);
      const parsed = parseMaildirFileName(at.name)!;
      // Keep the file name, like Dovecot's MOVE; a fresh one only when a copy with that name is there.
      let name = at.name;
      if (await findIn(dir, parsed.idKey)) {
        name = `${newUniqueName()}${at.name.slice(parsed.unique.length)}`;
      }
      const target = join(dir, at.sub, name);
      await rename(join(at.dir, at.sub, at.name), target);
      return describe({ folderPath: toPath, dir, sub: at.sub, name });
    });
  }

  async function copy(upn: string, id: string, to: FolderRef): Promise<StoredMessage> {
    const toPath = await folderPathOf(upn, to);
    return withLocated(upn, id, `copy a message to "${toPath}"`, async (at) => {
      const dir = await ensureFolderDirs(upn, toPath);
      const parsed = parseMaildirFileName(at.name)!;
      // A copy is a message of its own: a new base name and no `,I=` key of the original.
      const source = join(at.dir, at.sub, at.name);
      const stats = await lstat(source);
      const base = `${newUniqueName()},S=${stats.size}`;
      const name = parsed.flags ? `${base}:2,${parsed.flags}` : base;
      const tmp = join(dir, "tmp", base);
      await copyFile(source, tmp);
      await applyOwner(tmp, owner);
      await utimes(tmp, stats.mtime, stats.mtime);
      await rename(tmp, join(dir, at.sub, name));
      return describe({ folderPath: toPath, dir, sub: at.sub, name });
    });
  }

  async function replace(upn: string, id: string, raw: Uint8Array): Promise<StoredMessage> {
    return withLocated(upn, id, "rewrite a message", async (at) => {
      const parsed = parseMaildirFileName(at.name)!;
      const source = join(at.dir, at.sub, at.name);
      const stats = await lstat(source);
      // A fresh file name so that Dovecot sees a new message (a new UID, never changed content under an
      // old one); the `,I=` key keeps the id.
      const base = `${newUniqueName()},S=${raw.byteLength},I=${parsed.idKey}`;
      const name = parsed.flags ? `${base}:2,${parsed.flags}` : base;
      const tmp = join(at.dir, "tmp", base);
      await writeFile(tmp, raw, { flag: "w", mode: 0o600 });
      await applyOwner(tmp, owner);
      await utimes(tmp, stats.mtime, stats.mtime);
      const next: Located = { ...at, name };
      await rename(tmp, join(at.dir, at.sub, name));
      await unlink(source).catch(async (error: unknown) => {
        // Dovecot renamed the old file meanwhile (a flag change): find it by its base name.
        if (!isErrno(error, "ENOENT")) throw error;
        for (const sub of ["cur", "new"]) {
          const names = await readdir(join(at.dir, sub)).catch(() => [] as string[]);
          const old = names.find((n) => parseMaildirFileName(n)?.unique === parsed.unique);
          if (old) await unlink(join(at.dir, sub, old)).catch(() => undefined);
        }
      });
      located.set(`${normalizeUpn(upn)}\0${id}`, next);
      return describe(next);
    });
  }

  async function remove(upn: string, id: string): Promise<void> {
    await withLocated(upn, id, "delete a message", async (at) => {
      await unlink(join(at.dir, at.sub, at.name));
      located.delete(`${normalizeUpn(upn)}\0${id}`);
    });
  }

  async function delta(upn: string, folder: FolderRef, token?: string): Promise<DeltaDiff<StoredMessage>> {
    const messages = await list(upn, folder);
    const folderPath = await folderPathOf(upn, folder);
    const dir = join(homeOf(upn), "delta", "messages", folderIdOf(folderPath));
    try {
      return await computeDelta(dir, messages, token, owner);
    } catch (error) {
      throw storeFailure("compute a delta", error);
    }
  }

  async function folderDelta(upn: string, token?: string): Promise<DeltaDiff<StoredFolder>> {
    const folders = await listFolders(upn);
    try {
      return await computeDelta(join(homeOf(upn), "delta", "folders"), folders, token, owner);
    } catch (error) {
      throw storeFailure("compute a folder delta", error);
    }
  }

  return {
    mailRoot,
    owner,
    maildirOf,
    ensureRoot,
    ensureMailbox,
    listFolders,
    findFolder,
    getFolder,
    createFolder,
    deleteFolder,
    deliver,
    list,
    get,
    read,
    setSeen: (upn, id, seen) => setFlags(upn, id, { seen }),
    setFlags,
    move,
    copy,
    replace,
    delete: remove,
    delta,
    folderDelta,
  };
}
