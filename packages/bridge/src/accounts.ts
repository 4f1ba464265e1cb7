import { readFile, stat } from "node:fs/promises";
import { M365MailError } from "@m365-mail/core";
import type { AccountConfig, MappedCredentials, PassthroughCredentials } from "./config-schema.js";

/** Which configured account a device login belongs to, and the Microsoft 365 user it signs in as. */
export interface ResolvedLogin {
  readonly account: AccountConfig;
  /** The Microsoft 365 user (UPN) whose tokens are used. */
  readonly upn: string;
  /** Lower-cased login name, the key for the "verified before" memo. */
  readonly login: string;
}

/**
 * Finds the account for a login name: a mapped login first (exact, case-insensitive), then a passthrough
 * account for exactly that UPN, then a catch-all passthrough account for its domain.
 */
export function resolveLogin(
  accounts: readonly AccountConfig[],
  username: string,
): ResolvedLogin | undefined {
  const login = username.trim().toLowerCase();
  if (!login) return undefined;
  for (const account of accounts) {
    const c = account.credentials;
    if (c.mode === "mapped" && c.login === login) return { account, upn: c.username, login };
  }
  for (const account of accounts) {
    const c = account.credentials as PassthroughCredentials;
    if (c.mode === "passthrough" && c.username === login) return { account, upn: login, login };
  }
  const at = login.lastIndexOf("@");
  if (at > 0 && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(login)) {
    const domain = login.slice(at + 1);
    for (const account of accounts) {
      const c = account.credentials as PassthroughCredentials;
      if (c.mode === "passthrough" && c.domain === domain) return { account, upn: login, login };
    }
  }
  return undefined;
}

/**
 * The Microsoft 365 password of a mapped account, read on every password grant (so a rotated file is
 * picked up) from a file only its owner may read, or from an environment variable.
 */
export async function readMappedPassword(
  account: string,
  credentials: MappedCredentials,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (credentials.passwordEnv) {
    const value = env[credentials.passwordEnv];
    if (!value) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `account ${account}: the environment variable ${credentials.passwordEnv} is not set`,
        {
          source: "bridge",
          hint: `Set ${credentials.passwordEnv} to the Microsoft 365 password of ${credentials.username}.`,
        },
      );
    }
    return value;
  }
  const path = credentials.passwordFile!;
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `account ${account}: cannot read the password file ${path}`, {
      source: "bridge",
      cause: error,
      hint: `Check accounts[].credentials.passwordFile and that the bridge's user may read it.`,
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `account ${account}: the password file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)})`,
      { source: "bridge", hint: `Run: chmod 600 ${path}` },
    );
  }
  const password = text.replace(/\r?\n$/, "");
  if (!password) {
    throw new M365MailError("CONFIG_INVALID", `account ${account}: the password file ${path} is empty`, {
      source: "bridge",
      hint: `Write the Microsoft 365 password of ${credentials.username} into ${path}.`,
    });
  }
  return password;
}
