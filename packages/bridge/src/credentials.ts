import { deviceCodeTokenProvider } from "@m365-mail/auth-device-code";
import { ropcTokenProvider, type TokenCache } from "@m365-mail/auth-ropc";
import {
  isM365MailError,
  type Logger,
  M365MailError,
  type Resource,
  type TokenProvider,
} from "@m365-mail/core";
import { type ResolvedLogin, readMappedPassword, resolveLogin } from "./accounts.js";
import type { AccountConfig, BridgeConfig, MappedCredentials } from "./config-schema.js";
import type { Authenticate, BridgeProtocol, ClientInfo, SignedIn } from "./front-door.js";
import type { LockoutGuard, Release } from "./lockout-guard.js";
import type { BridgeMetrics } from "./metrics.js";
import { clientKey } from "./network.js";
import { passwordKeyedCache } from "./password-keyed-cache.js";
import { verifySecret, verifyUnknownSecret } from "./secret-hash.js";
import { SecretMemo } from "./secret-memo.js";
import { type AccountUse, needsAPerson, type SignInProblems } from "./sign-in-problems.js";

export interface CredentialsOptions {
  config: BridgeConfig;
  /**
   * The configured token cache (memory, file, Redis). Passthrough entries are sealed with the user's
   * password under names of their own; a mapped account's entries for the same user stay plain beside them.
   */
  cache: TokenCache;
  /** Mixed into the password-derived key when the cache is shared (the cache's own key). */
  cachePepper?: Uint8Array;
  /** PEM of an extra CA for Entra (the emulator's). */
  ca?: string;
  guard: LockoutGuard;
  problems: SignInProblems;
  metrics: BridgeMetrics;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** The config file's path, named in the `m365-mail bridge login` hint. */
  configPath?: string;
}

export interface Credentials {
  readonly authenticate: Authenticate;
  /** The account an SMTP listener's no-AUTH network acts as (no password from the device). */
  signInWithoutPassword(
    accountName: string,
    protocol: BridgeProtocol,
    options?: { device?: boolean },
  ): Promise<SignedIn>;
  /** The current settings of a signed-in account (delivery, answer mode, send-as). */
  account(name: string): AccountConfig | undefined;
  /** New accounts and connection settings; sessions already signed in keep their providers. */
  reload(config: BridgeConfig): void;
  /**
   * Device-code accounts whose sign-in is not in the token cache are reported now (status, metrics,
   * webhook), not only when a device first tries. Reads the cache; asks Entra nothing. With
   * `missingOnly`, only the accounts reported missing are looked at again (a status request).
   */
  checkStoredSignIns(options?: { missingOnly?: boolean }): Promise<void>;
  /**
   * Signs in, one after the other, each mapped account with a stored password that has no provider yet
   * (at start, and after a reload changed it) or an open sign-in problem: a password Entra refuses is
   * reported now (status, metrics, webhook) rather than at a device's first login, that login finds a
   * token, and a fixed one ends the problem (the spool then sends what it held). `protocol` is what the
   * account is most likely used for first (its token's resource). Never throws.
   */
  signInStoredPasswords(protocol: BridgeProtocol): Promise<void>;
  dispose(): Promise<void>;
}

/** A token provider the bridge owns and disposes of (ROPC, or a stored device-code sign-in). */
type OwnedProvider = TokenProvider & { dispose(): Promise<void> };

/** `inner` as the bridge hands it out: its own `getAccessToken` (reporting around inner's), disposed with it. */
function withGetAccessToken(
  inner: OwnedProvider,
  getAccessToken: TokenProvider["getAccessToken"],
): OwnedProvider {
  return {
    kind: inner.kind,
    name: inner.name,
    username: inner.username,
    ...(inner.cloud ? { cloud: inner.cloud } : {}),
    getAccessToken,
    dispose: () => inner.dispose(),
  };
}

/** A device-code account's provider: `hasSignIn` reads the token cache without asking Entra. */
type DeviceCodeProvider = OwnedProvider & { hasSignIn(): Promise<boolean> };

interface Session {
  readonly digest: Buffer;
  readonly provider: OwnedProvider;
}

/** What a device-code account's provider throws when only a new sign-in by a person helps. */
const SIGN_IN_AGAIN = new Set(["SIGN_IN_REQUIRED", "REFRESH_EXPIRED", "MFA_REQUIRED", "POLICY_BLOCKED"]);

/** SMTP delivered through Graph needs a Graph token; the relays and SMTP delivery need an Outlook one. */
function resourceFor(account: AccountConfig, protocol: BridgeProtocol): Resource {
  return protocol === "smtp" && account.delivery !== "smtp" ? "graph" : "outlook";
}

/** What a login's token is for, as sign-in problems name it (an SMTP login delivering by Graph: "graph"). */
function useOf(account: AccountConfig, protocol: BridgeProtocol): AccountUse {
  return resourceFor(account, protocol) === "graph" ? "graph" : protocol;
}

/** How long a sign-in problem of one user and password is answered without asking Entra again. */
const PROBLEM_MEMO_MS = 60_000;

/** The lockout guard's key for a mapped account's local login (counted like a client address). */
const localLoginKey = (account: AccountConfig) => `local login "${account.name}"`;

const wrongPassword = () =>
  new M365MailError("AUTH_FAILED", "authentication failed: wrong username or password", {
    source: "bridge",
    hint: "Check the username and password stored in the device.",
  });

/** An error's message without the "[m365-mail] [source]" prefix and the hint it ends with. */
function whatHappened(error: M365MailError): string {
  return (error.hint ? error.message.replace(` — ${error.hint}`, "") : error.message).replace(
    /^\[m365-mail\] (?:\[[^\]]+\] )?/,
    "",
  );
}

/**
 * Entra's "MFA required" with the fix in the bridge's words: the library's hint names the CLI's device
 * code login, while a bridge account gets one from its config and `m365-mail bridge login`.
 */
function mfaInBridgeWords(account: AccountConfig, upn: string, error: unknown, configPath?: string): unknown {
  if (!isM365MailError(error, "MFA_REQUIRED")) return error;
  return new M365MailError("MFA_REQUIRED", `account ${account.name}: ${whatHappened(error)}`, {
    source: "bridge",
    cause: error,
    retryable: false,
    ...(error.serverCode ? { serverCode: error.serverCode } : {}),
    hint: `A password alone cannot pass MFA: exclude ${upn} from per-user MFA and from every Conditional Access policy that requires it (Security Defaults require it for everyone), or make "${account.name}" a mapped account with "signIn": "device-code" in place of its password and run m365-mail bridge login --config ${configPath ?? "<the bridge's config file>"} ${account.name} once (a person, MFA included).`,
  });
}

/**
 * The accounts side of the bridge: checks a device's username and password and hands back a token
 * provider. A repeat login with a password already verified costs one HMAC and a Map lookup (no scrypt,
 * no ROPC); every new password goes through the lockout guard before it may reach Entra.
 */
export function createCredentials(options: CredentialsOptions): Credentials {
  let config = options.config;
  const { guard, problems, metrics, logger: log } = options;
  const memo = new SecretMemo();
  /** Passthrough: one provider per Microsoft 365 user, for the password last verified. */
  const sessions = new Map<string, Session>();
  /** Mapped: the local secret's HMAC once scrypt said yes, and one provider per account. */
  const verifiedMapped = new Map<string, Buffer>();
  const mappedProviders = new Map<string, OwnedProvider>();
  /** Concurrent first logins with the same password share one check. */
  const pending = new Map<string, Promise<SignedIn>>();
  /** Device-code accounts reported because no sign-in was stored (not because Entra refused one). */
  const missingSignIn = new Set<string>();
  /** Passthrough: a password that met a sign-in problem (MFA, expired, …) is answered from here for a minute. */
  const refusedRecently = new Map<string, { error: M365MailError; at: number }>();

  const providerFor = (upn: string, password: string | (() => Promise<string>), cache: TokenCache) =>
    ropcTokenProvider({
      tenantId: config.m365.tenantId,
      clientId: config.m365.clientId,
      username: upn,
      ...(typeof password === "string" ? { password } : { passwordProvider: password }),
      cloud: config.m365.cloud,
      ...(config.m365.authorityHost ? { authorityHost: config.m365.authorityHost } : {}),
      engine: config.m365.engine,
      cache,
      ...(options.ca ? { ca: options.ca } : {}),
      logger: log,
    });

  const signedIn = (account: AccountConfig, upn: string, auth: TokenProvider): SignedIn => ({
    account: account.name,
    mailbox: account.mailbox ?? upn,
    auth,
  });

  async function token(account: AccountConfig, auth: TokenProvider, protocol: BridgeProtocol): Promise<void> {
    try {
      await tokenFor(account, auth, protocol);
      missingSignIn.delete(account.name);
      problems.succeeded(account.name, auth.username);
    } catch (error) {
      problems.report(account.name, auth.username, error, useOf(account, protocol));
      throw error;
    }
  }

  /**
   * A device-code account's provider whose sign-in failures — at a device's login or later, when a
   * delivery or a relay renews its token — carry the bridge's command and are reported.
   */
  function deviceCodeProvider(account: AccountConfig, c: MappedCredentials): DeviceCodeProvider {
    const inner = deviceCodeProviderFor(config, c.username, options.cache, options.ca, log);
    return {
      ...withGetAccessToken(inner, (resource, opts) =>
        inner.getAccessToken(resource, opts).catch((error: unknown) => {
          const reported = signInAgain(account, error);
          if (!reported) throw error;
          problems.report(account.name, c.username, reported, resource === "graph" ? "graph" : undefined);
          throw reported;
        }),
      ),
      hasSignIn: () => inner.hasSignIn(),
    };
  }

  /**
   * A mapped account's provider, signing in with the password the bridge stores (file or variable) under
   * the lockout guard, as passthrough passwords are: a stored password Entra refused — changed in Entra,
   * not in the file — is not sent again (every device login and spool retry would otherwise count towards
   * Entra's lockout of the mailbox's user) until the file holds another one. The refusal is the bridge's
   * configuration problem, reported for a person, not a device's wrong password.
   */
  function storedPasswordProvider(account: AccountConfig, c: MappedCredentials): OwnedProvider {
    const where = c.passwordFile ? `the file ${c.passwordFile}` : `the variable ${c.passwordEnv}`;
    const refused = (cause: unknown) =>
      new M365MailError(
        "CONFIG_INVALID",
        `account ${account.name}: Microsoft 365 refused the password in ${where} for ${c.username}`,
        {
          source: "bridge",
          cause,
          hint: `Put ${c.username}'s current Microsoft 365 password into ${where}; the bridge reads it at the next sign-in and does not send the refused one again (Entra locks the account after about 10 failures).`,
        },
      );
    let lastGrant: { password: string; release: Release } | undefined;
    const inner = providerFor(
      c.username,
      async () => {
        const password = await readMappedPassword(account.name, c, options.env);
        // Sign-ins of one provider run one at a time: a grant before this one has had Entra's answer.
        lastGrant?.release();
        try {
          lastGrant = { password, release: await guard.admitPasswordGrant(c.username, password) };
        } catch (error) {
          throw refused(error);
        }
        return password;
      },
      options.cache,
    );
    return withGetAccessToken(inner, (resource, opts) =>
      inner.getAccessToken(resource, opts).then(
        (token) => {
          const used = lastGrant;
          lastGrant = undefined;
          if (used) {
            guard.passwordAccepted(c.username, used.password);
            used.release();
          }
          return token;
        },
        (error: unknown) => {
          const used = lastGrant;
          lastGrant = undefined;
          const wrongPassword = isM365MailError(error, "AUTH_FAILED");
          if (used) {
            if (wrongPassword) guard.passwordRefused(c.username, used.password);
            used.release();
          }
          // Callers at the same moment share one grant (a device's login and a spool delivery): each
          // hears Entra's refusal as the stored password's, not only the one that read the file.
          if (wrongPassword) throw refused(error);
          throw mfaInBridgeWords(account, c.username, error, options.configPath);
        },
      ),
    );
  }

  /** A device-code account whose stored sign-in is gone or refused: the hint names the bridge's command. */
  function signInAgain(account: AccountConfig, error: unknown): M365MailError | undefined {
    const c = account.credentials;
    if (c.mode !== "mapped" || c.signIn !== "device-code") return undefined;
    if (!(error instanceof M365MailError) || !SIGN_IN_AGAIN.has(error.code)) return undefined;
    // The sign-in is missing (nobody signed in) rather than refused: storing one is enough to clear it.
    if (error.code === "SIGN_IN_REQUIRED") missingSignIn.add(account.name);
    else missingSignIn.delete(account.name);
    // A refused refresh token (REFRESH_EXPIRED) needs the same person and the same command.
    const code = error.code === "REFRESH_EXPIRED" ? "SIGN_IN_REQUIRED" : error.code;
    return new M365MailError(code, `account ${account.name}: ${whatHappened(error)}`, {
      source: "bridge",
      cause: error,
      // Until a person signs in again, every login fails the same way.
      retryable: false,
      ...(error.serverCode ? { serverCode: error.serverCode } : {}),
      hint: `A person signs in as ${c.username} once: m365-mail bridge login --config ${options.configPath ?? "<the bridge's config file>"} ${account.name} (MFA included; the running bridge picks the sign-in up from its token cache).`,
    });
  }

  /** `auto` delivery falls back to SMTP where Graph is not consented: so may its login. */
  async function tokenFor(
    account: AccountConfig,
    auth: TokenProvider,
    protocol: BridgeProtocol,
  ): Promise<void> {
    try {
      await auth.getAccessToken(resourceFor(account, protocol));
    } catch (error) {
      const graphRefused =
        isM365MailError(error, "CONSENT_REQUIRED") || isM365MailError(error, "ACCESS_DENIED");
      if (!(account.delivery === "auto" && protocol === "smtp" && graphRefused)) throw error;
      await auth.getAccessToken("outlook");
    }
  }

  function mappedProvider(account: AccountConfig, c: MappedCredentials): OwnedProvider {
    let provider = mappedProviders.get(account.name);
    if (!provider) {
      provider =
        c.signIn === "device-code" ? deviceCodeProvider(account, c) : storedPasswordProvider(account, c);
      mappedProviders.set(account.name, provider);
    }
    return provider;
  }

  /** True when this local secret was verified before (no scrypt, no guard). */
  function mappedVerified(resolved: ResolvedLogin, password: string): boolean {
    const memoKey = `mapped:${resolved.account.name}`;
    return SecretMemo.same(verifiedMapped.get(memoKey), memo.digest(memoKey, password));
  }

  async function mapped(resolved: ResolvedLogin, password: string, client: ClientInfo): Promise<SignedIn> {
    const { account } = resolved;
    const c = account.credentials as MappedCredentials;
    if (!mappedVerified(resolved, password)) {
      if (!(await verifySecret(password, c.secretHash))) {
        guard.clientFailed(clientKey(client.address));
        guard.clientFailed(localLoginKey(account));
        throw wrongPassword();
      }
      guard.clientSucceeded(localLoginKey(account));
      const memoKey = `mapped:${account.name}`;
      verifiedMapped.set(memoKey, memo.digest(memoKey, password));
    }
    guard.clientSucceeded(clientKey(client.address));
    const provider = mappedProvider(account, c);
    if (client.protocol === "smtp" && account.answer === "spool") {
      // Its messages go to the spool, not to Microsoft 365: the local secret is the whole login, so an
      // outage or a sign-in problem holds messages instead of refusing them. A token is still asked for,
      // without waiting, so that a problem shows in status at once.
      void token(account, provider, client.protocol).catch(() => undefined);
    } else {
      await token(account, provider, client.protocol);
    }
    return signedIn(account, c.username, provider);
  }

  /** The session of a passthrough password verified before, if this is that password. */
  function passthroughVerified(resolved: ResolvedLogin, password: string): Session | undefined {
    const known = sessions.get(resolved.upn);
    const digest = memo.digest(`passthrough:${resolved.upn}`, password);
    return known && SecretMemo.same(known.digest, digest) ? known : undefined;
  }

  /**
   * The fast path: a password verified before, a token in memory. If Microsoft 365 now refuses it (the
   * password was changed and the refresh token revoked), it is forgotten and counted as a refused
   * password, so the next login with it stops at the guard instead of reaching Entra again.
   */
  async function passthroughKnown(
    resolved: ResolvedLogin,
    known: Session,
    password: string,
    client: ClientInfo,
  ): Promise<SignedIn> {
    const { account, upn } = resolved;
    try {
      await token(account, known.provider, client.protocol);
    } catch (error) {
      if (isM365MailError(error, "AUTH_FAILED") || isM365MailError(error, "USER_NOT_FOUND")) {
        if (sessions.get(upn) === known) {
          sessions.delete(upn);
          setTimeout(() => void known.provider.dispose(), 60_000).unref();
        }
        guard.passwordRefused(upn, password);
        guard.clientFailed(clientKey(client.address));
        log.info(`login refused by Microsoft 365 for ${upn} from ${client.address} (the password changed?)`);
        throw wrongPassword();
      }
      throw error;
    }
    guard.clientSucceeded(clientKey(client.address));
    return signedIn(account, upn, known.provider);
  }

  async function passthrough(
    resolved: ResolvedLogin,
    password: string,
    client: ClientInfo,
  ): Promise<SignedIn> {
    const { account, upn } = resolved;
    const digest = memo.digest(`passthrough:${upn}`, password);
    const flightKey = `${upn}\0${digest.toString("base64")}`;
    const inflight = pending.get(flightKey);
    if (inflight) return inflight;
    const recent = refusedRecently.get(flightKey);
    if (recent && Date.now() - recent.at < PROBLEM_MEMO_MS) {
      // The same password met a problem that needs a person moments ago: a device retrying in a loop
      // would otherwise ask Entra every few seconds (and trip AADSTS50196).
      guard.clientFailed(clientKey(client.address));
      throw recent.error;
    }
    const attempt = (async () => {
      let release: Release;
      try {
        release = await guard.admitPasswordGrant(upn, password);
      } catch (error) {
        guard.clientFailed(clientKey(client.address));
        throw error;
      }
      // Released once Entra's answer is recorded (a refusal counts before the next grant may go).
      try {
        const sealed = passwordKeyedCache(options.cache, upn, password, options.cachePepper, log);
        const provider = providerFor(upn, password, sealed);
        try {
          await tokenFor(account, provider, client.protocol);
        } catch (error) {
          await provider.dispose().catch(() => undefined);
          if (isM365MailError(error, "AUTH_FAILED") || isM365MailError(error, "USER_NOT_FOUND")) {
            guard.passwordRefused(upn, password);
            guard.clientFailed(clientKey(client.address));
            log.info(`login refused by Microsoft 365 for ${upn} from ${client.address} (wrong password)`);
            throw wrongPassword();
          }
          const problem = mfaInBridgeWords(account, upn, error, options.configPath);
          problems.report(account.name, upn, problem, useOf(account, client.protocol));
          if (needsAPerson(problem)) {
            refusedRecently.set(flightKey, { error: problem, at: Date.now() });
            if (refusedRecently.size > 10_000) refusedRecently.clear();
          }
          if (!isM365MailError(problem) || !problem.retryable) guard.clientFailed(clientKey(client.address));
          throw problem;
        }
        problems.succeeded(account.name, upn);
        guard.passwordAccepted(upn, password);
        guard.clientSucceeded(clientKey(client.address));
        const previous = sessions.get(upn);
        sessions.set(upn, { digest, provider });
        // Sessions signed in with the old password keep working until their token runs out.
        if (previous) setTimeout(() => void previous.provider.dispose(), 60_000).unref();
        return signedIn(account, upn, provider);
      } finally {
        release();
      }
    })();
    pending.set(flightKey, attempt);
    const clear = () => pending.delete(flightKey);
    attempt.then(clear, clear);
    return attempt;
  }

  const authenticate: Authenticate = async (username, password, client) => {
    const started = performance.now();
    try {
      const resolved = resolveLogin(config.accounts, username);
      const isMapped = resolved?.account.credentials.mode === "mapped";
      // A password verified before is answered from memory without asking the guard: other clients'
      // failures (on this IP or for this account) must not lock out a device that has it right.
      const known = resolved && password && !isMapped ? passthroughVerified(resolved, password) : undefined;
      let result: SignedIn;
      if (resolved && known) result = await passthroughKnown(resolved, known, password, client);
      else if (resolved && password && isMapped && mappedVerified(resolved, password))
        result = await mapped(resolved, password, client);
      else {
        const release = await guard.admitClient(clientKey(client.address));
        // A local secret is also counted per login: guesses from many addresses add up.
        let releaseLogin: Release | undefined;
        try {
          if (resolved && password && isMapped)
            releaseLogin = await guard.admitClient(localLoginKey(resolved.account));
          if (!resolved || !password) {
            // An unknown name pays a mapped secret's check: refusing it fast would list the local names.
            if (!resolved && password) await verifyUnknownSecret(password);
            guard.clientFailed(clientKey(client.address));
            throw wrongPassword();
          }
          result = isMapped
            ? await mapped(resolved, password, client)
            : await passthrough(resolved, password, client);
        } finally {
          releaseLogin?.();
          release();
        }
      }
      metrics.inc("m365_bridge_logins_total", { protocol: client.protocol, result: "ok" });
      log.debug(
        `login ok: ${resolved.login} as account ${result.account} in ${(performance.now() - started).toFixed(1)} ms`,
      );
      return result;
    } catch (error) {
      metrics.inc("m365_bridge_logins_total", { protocol: client.protocol, result: "failed" });
      throw error;
    }
  };

  return {
    authenticate,
    async signInWithoutPassword(accountName, protocol, { device = false } = {}) {
      const account = config.accounts.find((a) => a.name === accountName);
      if (!account) {
        throw new M365MailError("CONFIG_INVALID", `no account named ${accountName}`, {
          source: "bridge",
          hint: "Check listeners[].noAuth.account against accounts[].name.",
        });
      }
      const c = account.credentials;
      if (c.mode !== "mapped") {
        throw new M365MailError(
          "CONFIG_INVALID",
          `account ${accountName} is a passthrough account: without AUTH there is no password to sign in with`,
          { source: "bridge", hint: "Point listeners[].noAuth.account at a mapped account." },
        );
      }
      const provider = mappedProvider(account, c);
      // A device of a no-AUTH network sending to the spool: as a spool login, it does not wait for Entra.
      if (device && protocol === "smtp" && account.answer === "spool")
        void token(account, provider, protocol).catch(() => undefined);
      else await token(account, provider, protocol);
      return signedIn(account, c.username, provider);
    },
    account: (name) => config.accounts.find((a) => a.name === name),
    async checkStoredSignIns({ missingOnly = false } = {}) {
      for (const account of config.accounts) {
        const c = account.credentials;
        if (c.mode !== "mapped" || c.signIn !== "device-code") continue;
        if (missingOnly && !missingSignIn.has(account.name)) continue;
        const provider = mappedProvider(account, c);
        // A cache that cannot be read now (Redis down) is not a missing sign-in: logins will say more.
        const stored = await (provider as DeviceCodeProvider).hasSignIn().catch(() => true);
        if (stored) {
          // `bridge login` stored one since: the problem waits no longer for a device's next login.
          if (missingSignIn.delete(account.name)) problems.succeeded(account.name, c.username);
          continue;
        }
        const missing = new M365MailError(
          "SIGN_IN_REQUIRED",
          `no device code sign-in of ${c.username} is stored in the token cache`,
          { source: "bridge" },
        );
        problems.report(account.name, c.username, signInAgain(account, missing));
      }
    },
    async signInStoredPasswords(protocol) {
      for (const account of config.accounts) {
        const c = account.credentials;
        if (c.mode !== "mapped" || c.signIn === "device-code") continue;
        // Tried already, and fine or not a sign-in problem: nothing new to learn. An open problem is tried
        // again: a reload is how a person says "fixed" (the password file is read at each sign-in).
        if (mappedProviders.has(account.name) && !problems.isOpen(account.name, "sign-in")) continue;
        try {
          await token(account, mappedProvider(account, c), protocol);
          log.info(`account ${account.name}: signed in as ${c.username} with its stored password`);
        } catch (error) {
          // token() reported it (status, metrics, webhook); a device's login will meet the same answer.
          log.warn(
            `account ${account.name}: the sign-in with its stored password failed (${(error as Error).message})`,
          );
        }
      }
    },
    reload(next) {
      const before = new Map(config.accounts.map((a) => [a.name, JSON.stringify(a.credentials)]));
      const connectionChanged = JSON.stringify(next.m365) !== JSON.stringify(config.m365);
      config = next;
      for (const [name, provider] of mappedProviders) {
        const account = next.accounts.find((a) => a.name === name);
        if (connectionChanged || !account || JSON.stringify(account.credentials) !== before.get(name)) {
          mappedProviders.delete(name);
          verifiedMapped.delete(`mapped:${name}`);
          // Open sessions hold the provider; let them finish with it.
          setTimeout(() => void provider.dispose(), 60_000).unref();
        }
      }
      if (connectionChanged) {
        for (const [upn, session] of sessions) {
          sessions.delete(upn);
          setTimeout(() => void session.provider.dispose(), 60_000).unref();
        }
      }
    },
    async dispose() {
      const all = [...sessions.values()].map((s) => s.provider).concat([...mappedProviders.values()]);
      sessions.clear();
      mappedProviders.clear();
      await Promise.all(all.map((p) => p.dispose().catch(() => undefined)));
    },
  };
}

/**
 * The provider of a `signIn: "device-code"` account: headless (it never starts a flow; a person does,
 * with `m365-mail bridge login`), reading the sign-in from the bridge's token cache. `bridge login`
 * builds the same one with `onDeviceCode`, so both use the same cache entry.
 */
export function deviceCodeProviderFor(
  config: BridgeConfig,
  username: string,
  cache: TokenCache,
  ca: string | undefined,
  logger: Logger | undefined,
  onDeviceCode?: Parameters<typeof deviceCodeTokenProvider>[0]["onDeviceCode"],
) {
  return deviceCodeTokenProvider({
    tenantId: config.m365.tenantId,
    clientId: config.m365.clientId,
    username,
    cloud: config.m365.cloud,
    ...(config.m365.authorityHost ? { authorityHost: config.m365.authorityHost } : {}),
    cache,
    ...(ca ? { ca } : {}),
    ...(logger ? { logger } : {}),
    ...(onDeviceCode ? { onDeviceCode } : {}),
  });
}
