import { createHash } from "node:crypto";

export interface SmartLockoutOptions {
  /** Failed password sign-ins before the account is locked. Entra's default: 10. @default 10 */
  threshold?: number;
  /** How long a lockout lasts. Entra's default: 60 s (longer after repeated lockouts). @default 60 */
  lockoutSeconds?: number;
  /** Failures older than this no longer count. @default 3600 */
  windowSeconds?: number;
}

export interface SmartLockoutState {
  /** Failures counted in the window. */
  failures: number;
  /** ISO time the current lockout ends, when locked. */
  lockedUntil?: string;
}

export interface SmartLockout {
  /** True while the user is locked out (answer AADSTS50053 without checking the password). */
  isLocked(upn: string): boolean;
  /** A wrong password; returns true when this failure locked the account. */
  failed(upn: string, password: string): boolean;
  succeeded(upn: string): void;
  configure(options: SmartLockoutOptions): void;
  settings(): Required<SmartLockoutOptions>;
  state(upn: string): SmartLockoutState;
  reset(): void;
}

interface UserState {
  failures: number[];
  /** Hashes of the last three wrong passwords: Entra does not count the same wrong password again. */
  recentBad: string[];
  lockedUntil: number;
}

/**
 * Entra ID smart lockout, as documented: after `threshold` failed sign-ins the account is locked for
 * `lockoutSeconds` (AADSTS50053), and "smart lockout tracks the last three bad password hashes to avoid
 * incrementing the lockout counter for the same password".
 * https://learn.microsoft.com/en-us/entra/identity/authentication/howto-password-smart-lockout
 */
export function createSmartLockout(options: SmartLockoutOptions = {}): SmartLockout {
  let threshold = options.threshold ?? 10;
  let lockoutMs = (options.lockoutSeconds ?? 60) * 1000;
  let windowMs = (options.windowSeconds ?? 3600) * 1000;
  const users = new Map<string, UserState>();
  const of = (upn: string): UserState => {
    const key = upn.toLowerCase();
    let state = users.get(key);
    if (!state) {
      state = { failures: [], recentBad: [], lockedUntil: 0 };
      users.set(key, state);
    }
    return state;
  };
  const prune = (state: UserState, now: number) => {
    state.failures = state.failures.filter((t) => now - t < windowMs);
  };
  return {
    isLocked: (upn) => (users.get(upn.toLowerCase())?.lockedUntil ?? 0) > Date.now(),
    failed(upn, password) {
      const now = Date.now();
      const state = of(upn);
      prune(state, now);
      const hash = createHash("sha256").update(password).digest("base64");
      if (state.recentBad.includes(hash)) return false;
      state.recentBad = [...state.recentBad, hash].slice(-3);
      state.failures.push(now);
      if (state.failures.length >= threshold) {
        state.lockedUntil = now + lockoutMs;
        state.failures = [];
        return true;
      }
      return false;
    },
    succeeded(upn) {
      const state = users.get(upn.toLowerCase());
      if (state) {
        state.failures = [];
        state.recentBad = [];
      }
    },
    configure(next) {
      if (next.threshold !== undefined) threshold = next.threshold;
      if (next.lockoutSeconds !== undefined) lockoutMs = next.lockoutSeconds * 1000;
      if (next.windowSeconds !== undefined) windowMs = next.windowSeconds * 1000;
    },
    settings: () => ({ threshold, lockoutSeconds: lockoutMs / 1000, windowSeconds: windowMs / 1000 }),
    state(upn) {
      const state = users.get(upn.toLowerCase());
      if (!state) return { failures: 0 };
      prune(state, Date.now());
      return {
        failures: state.failures.length,
        ...(state.lockedUntil > Date.now() ? { lockedUntil: new Date(state.lockedUntil).toISOString() } : {}),
      };
    },
    reset: () => users.clear(),
  };
}
