/**
 * Who owns the files of the mail store. Dovecot runs its mail processes as the userdb uid and refuses
 * uid 0, so when the emulator runs as root the files it writes must belong to an unprivileged user
 * (Debian's `mail`, uid 8); when it runs as a normal user, Dovecot runs as that user too and nothing
 * needs changing.
 */
import { readFileSync } from "node:fs";
import { chown } from "node:fs/promises";

export interface MailOwner {
  uid: number;
  gid: number;
  /** User name, for Dovecot's `default_internal_user` when not running as root. */
  name?: string;
}

/**
 * - `"auto"` (default): the `mail` user when running as root, else the process' own user.
 * - `"process"`: whoever runs the emulator (never works with Dovecot as root).
 * - `{ uid, gid }`: an explicit owner.
 */
export type MailOwnerOption = "auto" | "process" | MailOwner;

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function processOwner(): MailOwner {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return { uid, gid, name: lookupUserName(uid) };
}

/** Reads /etc/passwd (Node has no getpwnam). */
export function lookupUser(name: string): MailOwner | undefined {
  for (const line of readLines("/etc/passwd")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid !== undefined && gid !== undefined) {
      return { uid: Number(uid), gid: Number(gid), name };
    }
  }
  return undefined;
}

export function lookupUserName(uid: number): string | undefined {
  for (const line of readLines("/etc/passwd")) {
    const [user, , id] = line.split(":");
    if (id !== undefined && Number(id) === uid) return user;
  }
  return undefined;
}

/** Reads /etc/group, for Dovecot's `default_internal_group`. */
export function lookupGroupName(gid: number): string | undefined {
  for (const line of readLines("/etc/group")) {
    const [group, , id] = line.split(":");
    if (id !== undefined && Number(id) === gid) return group;
  }
  return undefined;
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n");
  } catch {
    return [];
  }
}

export function resolveMailOwner(option: MailOwnerOption = "auto"): MailOwner {
  if (typeof option === "object") return option;
  if (option === "process" || !isRoot()) return processOwner();
  // Debian's `mail` user is uid/gid 8; fall back to that when /etc/passwd is unreadable.
  return lookupUser("mail") ?? { uid: 8, gid: 8, name: "mail" };
}

/** chown only when it changes something and we are allowed to (root); otherwise a no-op. */
export async function applyOwner(path: string, owner: MailOwner): Promise<void> {
  if (!isRoot()) return;
  await chown(path, owner.uid, owner.gid);
}
