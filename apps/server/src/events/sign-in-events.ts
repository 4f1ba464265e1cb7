import type { SignInHealthEvent, SignInHealthState } from "@m365-mail/core";

/** A sign-in health event as webhooks carry it (`type` is "sign-in.problem" or "sign-in.recovered"). */
export function signInEventData(event: SignInHealthEvent): Record<string, unknown> {
  return {
    provider: event.provider,
    username: event.username,
    code: event.code,
    message: event.message,
    ...(event.hint ? { hint: event.hint } : {}),
    ...(event.serverCode ? { serverCode: event.serverCode } : {}),
    at: event.at.toISOString(),
  };
}

/** The sign-in state as /readyz shows it. */
export function signInStateData(state: SignInHealthState): Record<string, unknown> {
  if (state.status !== "problem") {
    return { status: state.status, ...(state.status === "ok" ? { since: state.since.toISOString() } : {}) };
  }
  return {
    status: "problem",
    code: state.code,
    message: state.message,
    ...(state.hint ? { hint: state.hint } : {}),
    ...(state.serverCode ? { serverCode: state.serverCode } : {}),
    since: state.since.toISOString(),
  };
}
