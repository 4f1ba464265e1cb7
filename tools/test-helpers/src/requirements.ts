import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Programs some suites need, installed from Debian's packages (scripts/setup.sh, .ci/run). */
export type Requirement = "dovecot" | "redis" | "chromium" | "fetchmail" | "msmtp" | "swaks" | "postfix";

/** The command that installs each one. */
export const INSTALL_COMMANDS: Readonly<Record<Requirement, string>> = {
  dovecot:
    "apt-get install -y --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd",
  redis: "apt-get install -y --no-install-recommends redis-server",
  chromium: "apt-get install -y --no-install-recommends chromium",
  // The bridge's tests drive these unmodified Debian mail clients.
  fetchmail: "apt-get install -y --no-install-recommends fetchmail",
  msmtp: "apt-get install -y --no-install-recommends msmtp",
  // --tls needs the Perl TLS modules, which --no-install-recommends leaves out.
  swaks: "apt-get install -y --no-install-recommends swaks libnet-ssleay-perl libio-socket-ssl-perl",
  postfix: "apt-get install -y --no-install-recommends postfix libsasl2-modules",
};

const DETECT: Partial<Record<Requirement, () => boolean>> = {
  redis: () => spawnSync("redis-server", ["--version"]).status === 0,
  chromium: () => spawnSync("/usr/bin/chromium", ["--version"]).status === 0,
  fetchmail: () => existsSync("/usr/bin/fetchmail"),
  msmtp: () => existsSync("/usr/bin/msmtp"),
  swaks: () => existsSync("/usr/bin/swaks") && spawnSync("perl", ["-MNet::SSLeay", "-e1"]).status === 0,
  postfix: () => existsSync("/usr/sbin/postfix"),
};

/** True when `CI` says this is a CI run (`true` or `1`, as GitHub Actions, GitLab and most CIs set it). */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? "").toLowerCase();
  return value === "true" || value === "1";
}

/** A suite's requirement is missing in CI: the run must fail, not skip. */
export class MissingRequirementError extends Error {
  constructor(readonly requirement: Requirement) {
    super(
      `${requirement} is not installed, and CI=true: the suites that need it would be skipped silently. Install it: ${INSTALL_COMMANDS[requirement]}`,
    );
    this.name = "MissingRequirementError";
  }
}

export interface RequirementsOptions {
  /** How to tell whether each is installed. @default redis-server / /usr/bin/chromium answer `--version` */
  detect?: Partial<Record<Requirement, () => boolean>>;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Where the local notice goes. @default console.warn */
  warn?: (message: string) => void;
}

/**
 * `needs(requirement, detect?)` → whether it is installed, for `describe.skipIf(!needs("redis"))`. When it
 * is missing: in CI (`CI=true`) it throws with the install command, so the test file fails instead of
 * skipping; locally it returns false after one notice per requirement naming the install command.
 */
export function requirements(options: RequirementsOptions = {}) {
  const known = new Map<Requirement, boolean>();
  const warned = new Set<Requirement>();
  return function needs(requirement: Requirement, detect?: () => boolean): boolean {
    let installed = known.get(requirement);
    if (installed === undefined) {
      const check = detect ?? options.detect?.[requirement] ?? DETECT[requirement];
      if (!check) throw new Error(`needs("${requirement}") needs a detect function`);
      installed = check();
      known.set(requirement, installed);
    }
    if (installed) return true;
    if (isCi(options.env)) throw new MissingRequirementError(requirement);
    if (!warned.has(requirement)) {
      warned.add(requirement);
      (options.warn ?? console.warn)(
        `${requirement} is not installed: skipping the suites that need it (in CI this fails the run). Install it: ${INSTALL_COMMANDS[requirement]}`,
      );
    }
    return false;
  };
}

/** The process's own `needs`: Dovecot's detection comes from the emulator, `needs("dovecot", () => !!findDovecot())`. */
export const needs = requirements();
