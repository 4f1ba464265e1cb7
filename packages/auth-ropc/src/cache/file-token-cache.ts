import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { M365MailError, registerSecret, serialQueue, withFileLock } from "@m365-mail/core";
import { resolveCacheKey } from "./cache-key.js";
import type { TokenCache, TokenCacheEntry } from "./token-cache.js";

export interface FileTokenCacheOptions {
  /** File to keep the encrypted tokens in; its directory is created (mode 0700) when missing. */
  path: string;
  /** 32 random bytes. Default: `M365_CACHE_KEY` (base64) when neither key nor passphrase is given. */
  key?: Uint8Array;
  /** A passphrase, stretched with scrypt and a random salt stored in the file. */
  passphrase?: string;
  /**
   * How long `withLock` waits for another process's sign-in before failing with TIMEOUT (the write
   * lock around each change waits as long). @default 60000
   */
  lockWaitMs?: number;
}

const FORMAT = "m365-mail-token-cache";
const VERSION = 1;
// scrypt cost: ~50–100 ms once per process and salt; N=2^15 needs 32 MiB, hence maxmem.
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const SOURCE = "auth-ropc";
/** A lock file untouched this long was left by a process that died holding it (holders touch theirs). */
const LOCK_STALE_MS = 30_000;

interface Envelope {
  format: string;
  version: number;
  kdf: "raw" | "scrypt";
  salt?: string;
  N?: number;
  r?: number;
  p?: number;
  iv: string;
  tag: string;
  data: string;
}

type Entries = Record<string, TokenCacheEntry>;

function resolveKeySource(options: FileTokenCacheOptions): { key: Buffer } | { passphrase: string } {
  if (options.key !== undefined && options.passphrase !== undefined) {
    throw new M365MailError("CONFIG_INVALID", "fileTokenCache takes key or passphrase, not both", {
      source: SOURCE,
      hint: "Pass one of them (or neither, to use M365_CACHE_KEY).",
    });
  }
  if (options.passphrase !== undefined) {
    if (options.passphrase.length < 8) {
      throw new M365MailError(
        "CONFIG_INVALID",
        "the fileTokenCache passphrase is shorter than 8 characters",
        {
          source: SOURCE,
          hint: "Use a long passphrase, or a random 32-byte key (openssl rand -base64 32).",
        },
      );
    }
    registerSecret(options.passphrase);
    return { passphrase: options.passphrase };
  }
  return { key: resolveCacheKey(options.key, "fileTokenCache", ", or pass key or passphrase") };
}

function deriveKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

/**
 * Tokens in one file encrypted with AES-256-GCM (a fresh IV on every write), mode 0600, replaced
 * atomically (temporary file + rename). A modified file, or one written with another key, is
 * refused with CONFIG_INVALID: a cache that cannot be authenticated must not be trusted silently.
 * Several processes may share the file: each change is a read-modify-write under the lock file
 * `<path>.lock`, so no process's entry is lost to another's write, and `withLock` (a lock file per
 * name) lets processes that share the file sign in once between them.
 */
export function fileTokenCache(options: FileTokenCacheOptions): Required<TokenCache> {
  const { path } = options;
  if (!path) {
    throw new M365MailError("CONFIG_INVALID", "fileTokenCache needs a path", {
      source: SOURCE,
      hint: "Pass fileTokenCache({ path: '/var/lib/myapp/m365-tokens.json' }).",
    });
  }
  const source = resolveKeySource(options);
  const derived = new Map<string, Promise<Buffer>>();
  let salt: Buffer | undefined;
  // One operation at a time in this process: each set is a read-modify-write of the whole file.
  const serial = serialQueue();
  const lockWaitMs = options.lockWaitMs ?? 60_000;
  // Held by one process at a time across all of them; a holder that died frees it after LOCK_STALE_MS.
  const underFileLock = <T>(lockPath: string, what: string, task: () => Promise<T>): Promise<T> =>
    mkdir(dirname(path), { recursive: true, mode: 0o700 })
      .catch(() => undefined)
      .then(() =>
        withFileLock(lockPath, task, {
          waitMs: lockWaitMs,
          staleMs: LOCK_STALE_MS,
          onTimeout: () =>
            new M365MailError(
              "TIMEOUT",
              `waited ${lockWaitMs} ms for another process's ${what} (lock file ${lockPath})`,
              {
                source: SOURCE,
                hint: `Another process that uses ${path} holds the lock; if none runs, delete ${lockPath}.`,
              },
            ),
          onFailure: (cause) =>
            new M365MailError("CONFIG_INVALID", `cannot create the lock file ${lockPath}`, {
              source: SOURCE,
              cause,
              hint: "Check that this process may write the token cache file's directory.",
            }),
        }),
      );
  const changing = (task: () => Promise<void>) =>
    serial(() => underFileLock(`${path}.lock`, "change to the token cache", task));

  const rejected = (why: string, cause?: unknown) =>
    new M365MailError("CONFIG_INVALID", `the token cache file ${path} ${why}`, {
      source: SOURCE,
      cause,
      hint: `Delete ${path} (the next call signs in with the password and writes it again), or use the key or passphrase it was written with (key / passphrase / M365_CACHE_KEY).`,
    });

  const keyFor = (fileSalt: Buffer | undefined): Promise<Buffer> => {
    if ("key" in source) return Promise.resolve(source.key);
    const s = fileSalt ?? randomBytes(16);
    const id = s.toString("base64");
    let key = derived.get(id);
    if (!key) {
      key = deriveKey(source.passphrase, s);
      derived.set(id, key);
    }
    salt = s;
    return key;
  };

  async function load(): Promise<Entries> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw new M365MailError("CONFIG_INVALID", `cannot read the token cache file ${path}`, {
        source: SOURCE,
        cause: error,
        hint: "Check the path and that this process may read and write it.",
      });
    }
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch (error) {
      throw rejected("is not a token cache (not JSON): it was modified", error);
    }
    if (envelope?.format !== FORMAT || envelope.version !== VERSION) {
      throw rejected("is not an m365-mail token cache of a known version");
    }
    const wantKdf = "key" in source ? "raw" : "scrypt";
    if (envelope.kdf !== wantKdf) {
      throw rejected(
        envelope.kdf === "scrypt"
          ? "was written with a passphrase, but this cache has a key"
          : "was written with a key, but this cache has a passphrase",
      );
    }
    try {
      const fileSalt = envelope.kdf === "scrypt" ? Buffer.from(envelope.salt ?? "", "base64") : undefined;
      if (fileSalt && fileSalt.length < 16) throw new Error("salt too short");
      const key = await keyFor(fileSalt);
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(envelope.iv, "base64"));
      decipher.setAAD(aad(envelope));
      decipher.setAuthTag(Buffer.from(envelope.tag, "base64"));
      const plain = Buffer.concat([decipher.update(Buffer.from(envelope.data, "base64")), decipher.final()]);
      const parsed = JSON.parse(plain.toString("utf8")) as { entries?: Entries };
      return parsed.entries ?? {};
    } catch (error) {
      throw rejected("cannot be decrypted: it was modified, or written with another key", error);
    }
  }

  async function save(entries: Entries): Promise<void> {
    const key = await keyFor("key" in source ? undefined : salt);
    const iv = randomBytes(12);
    const header: Omit<Envelope, "iv" | "tag" | "data"> =
      "key" in source
        ? { format: FORMAT, version: VERSION, kdf: "raw" }
        : { format: FORMAT, version: VERSION, kdf: "scrypt", salt: salt!.toString("base64"), ...SCRYPT };
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(aad(header));
    const data = Buffer.concat([cipher.update(JSON.stringify({ entries }), "utf8"), cipher.final()]);
    const envelope: Envelope = {
      ...header,
      iv: iv.toString("base64"),
      tag: cipher.getAuthTag().toString("base64"),
      data: data.toString("base64"),
    };
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(envelope), { mode: 0o600, flag: "wx" });
      await rename(tmp, path);
      // The umask or an older file may have left wider bits: tokens are for this user only.
      await chmod(path, 0o600);
    } catch (error) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new M365MailError("CONFIG_INVALID", `cannot write the token cache file ${path}`, {
        source: SOURCE,
        cause: error,
        hint: "Check that this process may write the file and its directory.",
      });
    }
  }

  return {
    get: (key) =>
      serial(async () => {
        const entry = (await load())[key];
        if (!entry || (entry.expiresAt !== undefined && entry.expiresAt <= Date.now())) return undefined;
        return entry;
      }),
    set: (key, entry) =>
      changing(async () => {
        const entries = await load();
        const now = Date.now();
        // Drop expired entries so the file does not grow forever.
        for (const [k, e] of Object.entries(entries))
          if (e.expiresAt !== undefined && e.expiresAt <= now) delete entries[k];
        entries[key] = entry;
        await save(entries);
      }),
    delete: (key) =>
      changing(async () => {
        const entries = await load();
        if (!(key in entries)) return;
        delete entries[key];
        await save(entries);
      }),
    // Not in `serial`: the task reads and writes the cache itself.
    withLock: (name, task) =>
      underFileLock(
        `${path}.${createHash("sha256").update(name).digest("hex").slice(0, 16)}.lock`,
        "sign-in",
        task,
      ),
  };
}

/** The header is authenticated too: changing the KDF or salt is detected like changing the data. */
function aad(header: Pick<Envelope, "format" | "version" | "kdf" | "salt" | "N" | "r" | "p">): Buffer {
  const { format, version, kdf, salt, N, r, p } = header;
  return Buffer.from(JSON.stringify({ format, version, kdf, salt, N, r, p }), "utf8");
}
