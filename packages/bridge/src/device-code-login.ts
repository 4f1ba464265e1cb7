import type { DeviceCodeInfo } from "@m365-mail/auth-device-code";
import { type Logger, M365MailError, type Resource } from "@m365-mail/core";
import type { BridgeConfig } from "./config-schema.js";
import { deviceCodeProviderFor } from "./credentials.js";
import { openTokenCache, readCa } from "./token-cache.js";

export interface AccountSignIn {
  readonly account: string;
  readonly username: string;
  /** Each resource the bridge may need, with the expiry of its first token or why it was refused. */
  readonly resources: readonly { resource: Resource; expiresAt?: Date; error?: M365MailError }[];
}

/**
 * `m365-mail bridge login`: a person signs a `signIn: "device-code"` account in once, MFA included.
 * The sign-in (a refresh token, never a password) goes into the bridge's own token cache, where the
 * running bridge finds it at the account's next login; no restart.
 */
export async function signInAccount(
  config: BridgeConfig,
  accountName: string,
  options: {
    onDeviceCode: (info: DeviceCodeInfo) => void;
    env?: NodeJS.ProcessEnv;
    signal?: AbortSignal;
    logger?: Logger;
  },
): Promise<AccountSignIn> {
  const account = config.accounts.find((a) => a.name === accountName);
  const deviceCodeAccounts = config.accounts
    .filter((a) => a.credentials.mode === "mapped" && a.credentials.signIn === "device-code")
    .map((a) => a.name);
  const choose =
    deviceCodeAccounts.length > 0
      ? `Accounts that sign in with a device code: ${deviceCodeAccounts.join(", ")}.`
      : 'No account has "signIn": "device-code" yet: add it to a mapped account\'s credentials (docs/bridge.md).';
  if (!account) {
    throw new M365MailError("CONFIG_INVALID", `the bridge config has no account named ${accountName}`, {
      source: "bridge",
      hint: choose,
    });
  }
  const c = account.credentials;
  if (c.mode !== "mapped" || c.signIn !== "device-code") {
    throw new M365MailError(
      "CONFIG_INVALID",
      `account ${accountName} signs in with ${c.mode === "passthrough" ? "the device's password" : "the password the bridge holds"}: there is nothing to log in`,
      { source: "bridge", hint: choose },
    );
  }
  const ca = await readCa(config);
  const { cache, closeCache } = await openTokenCache(config, options.env ?? process.env, options.logger);
  const provider = deviceCodeProviderFor(config, c.username, cache, ca, options.logger, options.onDeviceCode);
  try {
    const graph = await provider.signIn({ ...(options.signal ? { signal: options.signal } : {}) });
    const resources: AccountSignIn["resources"][number][] = [
      { resource: "graph", expiresAt: graph.expiresAt },
    ];
    // Outlook (SMTP, IMAP, POP3) comes from the refresh token: proves the stored sign-in serves both.
    try {
      const outlook = await provider.getAccessToken("outlook", {
        ...(options.signal ? { signal: options.signal } : {}),
      });
      resources.push({ resource: "outlook", expiresAt: outlook.expiresAt });
    } catch (error) {
      if (!(error instanceof M365MailError)) throw error;
      resources.push({ resource: "outlook", error });
    }
    return { account: account.name, username: c.username, resources };
  } finally {
    await provider.dispose();
    await closeCache();
  }
}
