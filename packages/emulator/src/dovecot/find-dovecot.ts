/**
 * Locates Debian's Dovecot (the emulator's IMAP and POP3 server). Nothing is bundled: where Dovecot is
 * missing the emulator says how to install it and runs without IMAP/POP3.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, dirname, join } from "node:path";

export const DOVECOT_INSTALL_HINT =
  "apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd";

export interface DovecotInstallation {
  /** The `dovecot` master binary. */
  dovecot: string;
  /** `doveadm`, for `kick`; undefined when not found. */
  doveadm: string | undefined;
  /** Folder of Dovecot's service binaries (`imap`, `pop3`, `lmtp`). */
  libexecDir: string | undefined;
  /** Which protocol daemons are installed (dovecot-imapd, dovecot-pop3d, dovecot-lmtpd). */
  protocols: { imap: boolean; pop3: boolean; lmtp: boolean };
}

const SBIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
const LIBEXEC_DIRS = ["/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot"];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function searchPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SBIN_DIRS, "/usr/bin"];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The path of the `dovecot` binary, or undefined when Dovecot is not installed (install it with
 * DOVECOT_INSTALL_HINT). `M365_DOVECOT_BIN` overrides the search.
 */
export function findDovecot(): string | undefined {
  const override = process.env.M365_DOVECOT_BIN;
  if (override) return executable(override) ? override : undefined;
  return searchPath("dovecot");
}

/** Everything startDovecot needs to know about the installation; undefined when Dovecot is absent. */
export function inspectDovecot(): DovecotInstallation | undefined {
  const dovecot = findDovecot();
  if (!dovecot) return undefined;
  const doveadm = [join(dirname(dovecot), "doveadm"), join(dirname(dirname(dovecot)), "bin", "doveadm")].find(
    executable,
  );
  const libexecDir = LIBEXEC_DIRS.find((dir) => executable(join(dir, "auth")));
  const has = (name: string) => (libexecDir ? executable(join(libexecDir, name)) : true);
  return {
    dovecot,
    doveadm: doveadm ?? searchPath("doveadm"),
    libexecDir,
    protocols: { imap: has("imap"), pop3: has("pop3"), lmtp: has("lmtp") },
  };
}
