import type { ErrorCode } from "./errors.js";
import { M365MailError } from "./errors.js";

/** Where a token provider's sign-in stands: "unknown" until its first grant succeeds or fails. */
export type SignInHealthState =
  | { readonly status: "unknown" }
  | { readonly status: "ok"; readonly since: Date }
  | {
      readonly status: "problem";
      /** What needs a person: MFA_REQUIRED, PASSWORD_EXPIRED, REFRESH_EXPIRED, DEVICE_CODE_EXPIRED, … */
      readonly code: ErrorCode;
      readonly message: string;
      /** The setting to change or the command to run. */
      readonly hint: string | undefined;
      /** Microsoft's code, e.g. "AADSTS50076". */
      readonly serverCode: string | undefined;
      readonly since: Date;
    };

/**
 * A change of sign-in state: a problem that needs a person appeared (or became another problem), or a
 * later success cleared it. Emitted once per change, never once per failing request.
 */
export interface SignInHealthEvent {
  readonly type: "problem" | "recovered";
  /** The provider's name: "auth-ropc", "auth-device-code", … */
  readonly provider: string;
  readonly username: string;
  /** For "recovered": the problem that was cleared. */
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint: string | undefined;
  readonly serverCode: string | undefined;
  readonly at: Date;
}

export type SignInHealthListener = (event: SignInHealthEvent) => void;

/**
 * Whether a failed sign-in needs a person: every typed refusal that retrying cannot cure (MFA, an
 * expired password, a locked account, missing consent, a refused refresh token of an interactive
 * sign-in, …). Outages (THROTTLED, TIMEOUT, SERVER_ERROR, …) and a caller's abort are not.
 */
export function isSignInProblem(error: unknown): error is M365MailError {
  return error instanceof M365MailError && !error.retryable && error.code !== "ABORTED";
}

export interface SignInHealthTracker {
  /** Calls `listener` once per change of sign-in state; returns the function that unsubscribes. */
  onHealthChange(listener: SignInHealthListener): () => void;
  healthState(): SignInHealthState;
  /** A grant succeeded: clears a problem (one "recovered" event). */
  succeeded(): void;
  /** A grant failed: a new problem, or another one than before, is one "problem" event. */
  failed(error: unknown): void;
}

/** The state machine both token providers use, so "once per change of state" means the same everywhere. */
export function signInHealthTracker(provider: string, username: string): SignInHealthTracker {
  let state: SignInHealthState = { status: "unknown" };
  const listeners = new Set<SignInHealthListener>();
  const emit = (event: SignInHealthEvent) => {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not turn into a failed token request.
      }
    }
  };
  return {
    onHealthChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    healthState: () => state,
    succeeded() {
      const previous = state;
      if (previous.status === "ok") return;
      state = { status: "ok", since: new Date() };
      if (previous.status === "problem") {
        emit({
          type: "recovered",
          provider,
          username,
          code: previous.code,
          message: `sign-in of ${username} works again (was ${previous.code})`,
          hint: undefined,
          serverCode: previous.serverCode,
          at: state.since,
        });
      }
    },
    failed(error) {
      if (!isSignInProblem(error)) return;
      if (state.status === "problem" && state.code === error.code) return;
      const since = new Date();
      state = {
        status: "problem",
        code: error.code,
        message: error.message,
        hint: error.hint,
        serverCode: error.serverCode,
        since,
      };
      emit({
        type: "problem",
        provider,
        username,
        code: error.code,
        message: error.message,
        hint: error.hint,
        serverCode: error.serverCode,
        at: since,
      });
    },
  };
}
