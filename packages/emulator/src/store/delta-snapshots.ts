/**
 * Delta tokens for Graph's `/delta` queries. Changes can come from Graph, SMTP, IMAP or POP3 (Dovecot
 * renames and deletes files behind our back), so instead of an event log the store keeps snapshots:
 * a token names a saved map of item id → change key, and a delta is the difference between that map
 * and the folder as it is now. Works whoever changed the Maildir.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { M365MailError } from "@m365-mail/core";
import { applyOwner, type MailOwner } from "./mail-owner.js";
import { STORE_SOURCE } from "./maildir-names.js";

/** Snapshots kept per scope; an older token answers like Graph's expired sync state. */
export const MAX_SNAPSHOTS = 32;

export interface DeltaDiff<T> {
  created: T[];
  updated: T[];
  /** Ids that were present at the token's state and are gone now. */
  deleted: string[];
  /** Token for the next call; the same token when nothing changed. */
  token: string;
}

const TOKEN = /^[a-z0-9]{1,20}-[a-f0-9]{16}$/;

export function isDeltaToken(token: string): boolean {
  return TOKEN.test(token);
}

export async function computeDelta<T extends { id: string; changeKey: string }>(
  dir: string,
  current: readonly T[],
  token: string | undefined,
  owner: MailOwner,
): Promise<DeltaDiff<T>> {
  const now = new Map(current.map((item) => [item.id, item.changeKey]));
  let previous: Map<string, string> | undefined;
  if (token !== undefined) {
    previous = await loadSnapshot(dir, token);
  }
  const created: T[] = [];
  const updated: T[] = [];
  const deleted: string[] = [];
  for (const item of current) {
    const before = previous?.get(item.id);
    if (before === undefined) created.push(item);
    else if (before !== item.changeKey) updated.push(item);
  }
  if (previous) for (const id of previous.keys()) if (!now.has(id)) deleted.push(id);

  const unchanged =
    token !== undefined && created.length === 0 && updated.length === 0 && deleted.length === 0;
  const next = unchanged ? token : await saveSnapshot(dir, now, owner);
  return { created, updated, deleted, token: next };
}

async function loadSnapshot(dir: string, token: string): Promise<Map<string, string>> {
  const missing = (cause?: unknown) =>
    new M365MailError("NOT_FOUND", "the delta token is unknown or expired", {
      source: STORE_SOURCE,
      serverCode: "SyncStateNotFound",
      cause,
      hint: "Start a new delta round without a token (Graph answers 410 Gone: resync from scratch).",
    });
  if (!isDeltaToken(token)) throw missing();
  try {
    const data = JSON.parse(await readFile(join(dir, `${token}.json`), "utf8")) as Record<string, string>;
    return new Map(Object.entries(data));
  } catch (error) {
    throw missing(error);
  }
}

async function saveSnapshot(dir: string, items: Map<string, string>, owner: MailOwner): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await applyOwner(dir, owner);
  // Time first so that tokens sort by age; random part so that two calls in one millisecond differ.
  const token = `${Date.now().toString(36)}-${randomBytes(8).toString("hex")}`;
  const file = join(dir, `${token}.json`);
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(Object.fromEntries(items)), { mode: 0o600 });
  await applyOwner(tmp, owner);
  await rename(tmp, file);
  await prune(dir);
  return token;
}

async function prune(dir: string): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  const excess = names.length - MAX_SNAPSHOTS;
  for (const name of names.slice(0, Math.max(0, excess))) {
    await unlink(join(dir, name)).catch(() => undefined);
  }
}
