import { type Logger, M365MailError } from "@m365-mail/core";
import type { LockoutSettings } from "./config-schema.js";
import { SecretMemo } from "./secret-memo.js";

export type GuardRefusal = "known-bad-password" | "account-cap" | "client-blocked";

export interface LockoutGuardOptions {
  settings: LockoutSettings;
  logger: Logger;
  /** Counted in metrics. */
  onRefusal?: (reason: GuardRefusal) => void;
  /** Tests pass a clock. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Ends a login attempt or a password grant that the guard admitted (call it once the outcome is recorded). */
export type Release = () => void;

export interface LockoutGuard {
  /**
   * Before checking a password that is not known to be right: waits (slow-down) or throws when this
   * client IP failed too often, counting its attempts still in progress as failures to come.
   */
  admitClient(address: string): Promise<Release>;
  /**
   * Before a password grant for `upn`: throws when that password already failed or the account's cap is
   * reached; waits while the grants already in flight could fill the cap. Release after passwordRefused
   * or passwordAccepted.
   */
  admitPasswordGrant(upn: string, password: string): Promise<Release>;
  /** A password Entra refused (AADSTS50126): remembered as an HMAC, counted against the account. */
  passwordRefused(upn: string, password: string): void;
  /** Any failed login from this client (wrong password, unknown user, refused by the guard). */
  clientFailed(address: string): void;
  clientSucceeded(address: string): void;
  /** Entra accepted this password: forget it as bad (a password set back to an old value). */
  passwordAccepted(upn: string, password: string): void;
  settings(): LockoutSettings;
  update(settings: LockoutSettings): void;
  snapshot(): { blockedClients: number; cappedAccounts: number };
}

interface AccountState {
  failures: number[];
  badPasswords: Map<string, number>;
  cappedLogged: boolean;
  knownBadLogged: boolean;
}

interface ClientState {
  failures: number[];
  slowLogged: boolean;
  blockedLogged: boolean;
}

/** Attempts admitted and not yet released, per account or client: each may still turn into a failure. */
class InFlight {
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Map<string, (() => void)[]>();

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Resolves when one of `key`'s attempts is released. */
  settled(key: string): Promise<void> {
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
  }

  begin(key: string): Release {
    this.counts.set(key, this.count(key) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(key) - 1;
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
      const waiting = this.waiters.get(key);
      this.waiters.delete(key);
      for (const wake of waiting ?? []) wake();
    };
  }
}

/**
 * Entra locks an account after about 10 failed sign-ins (AADSTS50053) — taking down every other user of
 * that mailbox — so a device with a wrong stored password must not be allowed to hammer Entra. The guard:
 * - refuses a password Entra already refused for that account, without asking again (an HMAC of it is
 *   kept for the window, never the password);
 * - allows at most `maxFailedGrants` failed password grants per account per window, then refuses new
 *   passwords for that account until the window moves on (a password already verified still works: the
 *   credentials layer answers it from memory before asking the guard);
 * - delays a client IP that keeps failing, then refuses it for the window.
 * Attempts still in flight count as failures to come: simultaneous logins with different wrong passwords
 * wait for each other's answers instead of all reaching Entra at once.
 * Each of these is logged once per account or client and window.
 */
export function createLockoutGuard(options: LockoutGuardOptions): LockoutGuard {
  let settings = options.settings;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.()));
  const memo = new SecretMemo();
  const accounts = new Map<string, AccountState>();
  const clients = new Map<string, ClientState>();
  const grantsInFlight = new InFlight();
  const clientsInFlight = new InFlight();
  const log = options.logger;
  const windowMs = () => settings.windowSeconds * 1000;
  const recent = (times: number[]) => {
    const cutoff = now() - windowMs();
    while (times.length > 0 && times[0]! <= cutoff) times.shift();
    return times;
  };
  const account = (upn: string): AccountState => {
    const key = upn.toLowerCase();
    let state = accounts.get(key);
    if (!state) {
      state = { failures: [], badPasswords: new Map(), cappedLogged: false, knownBadLogged: false };
      accounts.set(key, state);
    }
    return state;
  };
  const client = (address: string): ClientState => {
    let state = clients.get(address);
    if (!state) {
      state = { failures: [], slowLogged: false, blockedLogged: false };
      clients.set(address, state);
    }
    return state;
  };
  const refuse = (reason: GuardRefusal, message: string, hint: string, retryable: boolean) => {
    options.onRefusal?.(reason);
    return new M365MailError("AUTH_FAILED", message, { source: "bridge", hint, retryable });
  };
  /** Throws when `password` already failed for `upn`, or the account's failed grants reached the cap. */
  const refuseKnownOrCapped = (upn: string, password: string) => {
    const state = accounts.get(upn.toLowerCase());
    if (!state) return;
    const digest = memo.digest(upn.toLowerCase(), password).toString("base64");
    const seenAt = state.badPasswords.get(digest);
    if (seenAt !== undefined && seenAt > now() - windowMs()) {
      if (!state.knownBadLogged) {
        state.knownBadLogged = true;
        log.warn(
          `lockout guard: a password Microsoft 365 already refused for ${upn} was sent again; answering "wrong password" without asking Entra (logged once per account and window)`,
        );
      }
      throw refuse(
        "known-bad-password",
        `the password for ${upn} was already refused by Microsoft 365; not asking again`,
        "Fix the password stored in the device (Entra locks the account after about 10 failures).",
        false,
      );
    }
    if (recent(state.failures).length >= settings.maxFailedGrants) {
      if (!state.cappedLogged) {
        state.cappedLogged = true;
        log.warn(
          `lockout guard: ${state.failures.length} wrong passwords for ${upn} reached Microsoft 365 in ${settings.windowSeconds} s; new passwords for it are refused without asking Entra until they age out (lockout.maxFailedGrants), so Entra's smart lockout (AADSTS50053) is never reached`,
        );
      }
      throw refuse(
        "account-cap",
        `too many wrong passwords for ${upn}; not asking Microsoft 365 again for now`,
        `Fix the password stored in the device and retry after lockout.windowSeconds (${settings.windowSeconds} s).`,
        true,
      );
    }
  };
  // Old entries would otherwise grow without bound under a spray of usernames or addresses.
  const sweep = setInterval(() => {
    for (const [key, state] of accounts) {
      recent(state.failures);
      for (const [digest, at] of state.badPasswords)
        if (at <= now() - windowMs()) state.badPasswords.delete(digest);
      if (state.failures.length === 0 && state.badPasswords.size === 0) accounts.delete(key);
    }
    for (const [key, state] of clients) if (recent(state.failures).length === 0) clients.delete(key);
  }, 60_000);
  sweep.unref();

  return {
    async admitClient(address) {
      let state: ClientState | undefined;
      let failures: number;
      for (;;) {
        state = clients.get(address);
        failures = state ? recent(state.failures).length : 0;
        if (state && failures >= settings.ipBlockAfter) {
          if (!state.blockedLogged) {
            state.blockedLogged = true;
            log.warn(
              `lockout guard: client ${address} failed ${failures} logins in ${settings.windowSeconds} s; refusing it until its failures age out (lockout.ipBlockAfter)`,
            );
          }
          throw refuse(
            "client-blocked",
            "too many failed logins from this client; try again later",
            "Fix the password stored in the device; the bridge refuses this client until its failures are older than lockout.windowSeconds.",
            true,
          );
        }
        if (failures + clientsInFlight.count(address) < settings.ipBlockAfter) break;
        // Its logins in progress could all fail: wait for their answers before admitting one more.
        await clientsInFlight.settled(address);
      }
      const release = clientsInFlight.begin(address);
      if (state && failures >= settings.ipSlowAfter) {
        if (!state.slowLogged) {
          state.slowLogged = true;
          log.warn(
            `lockout guard: client ${address} failed ${failures} logins; slowing its answers down (lockout.ipSlowAfter)`,
          );
        }
        await sleep(Math.min(5_000, (failures - settings.ipSlowAfter + 1) * settings.ipDelayMs));
      }
      return release;
    },
    async admitPasswordGrant(upn, password) {
      const key = upn.toLowerCase();
      for (;;) {
        refuseKnownOrCapped(upn, password);
        const failures = recent(accounts.get(key)?.failures ?? []).length;
        if (failures + grantsInFlight.count(key) < settings.maxFailedGrants) return grantsInFlight.begin(key);
        // The grants in flight could fill the cap: their answers decide whether this one may go.
        await grantsInFlight.settled(key);
      }
    },
    passwordRefused(upn, password) {
      const state = account(upn);
      // The first failure of a window: its refusals are logged again.
      if (recent(state.failures).length === 0) {
        state.cappedLogged = false;
        state.knownBadLogged = false;
      }
      state.failures.push(now());
      state.badPasswords.set(memo.digest(upn.toLowerCase(), password).toString("base64"), now());
    },
    passwordAccepted(upn, password) {
      const state = accounts.get(upn.toLowerCase());
      state?.badPasswords.delete(memo.digest(upn.toLowerCase(), password).toString("base64"));
    },
    clientFailed(address) {
      const state = client(address);
      if (recent(state.failures).length === 0) {
        state.slowLogged = false;
        state.blockedLogged = false;
      }
      state.failures.push(now());
    },
    clientSucceeded(address) {
      // A client that signs in is not an attacker: its earlier typos stop counting.
      clients.delete(address);
    },
    settings: () => settings,
    update(next) {
      settings = next;
    },
    snapshot() {
      let blockedClients = 0;
      for (const state of clients.values())
        if (recent(state.failures).length >= settings.ipBlockAfter) blockedClients++;
      let cappedAccounts = 0;
      for (const state of accounts.values())
        if (recent(state.failures).length >= settings.maxFailedGrants) cappedAccounts++;
      return { blockedClients, cappedAccounts };
    },
  };
}
