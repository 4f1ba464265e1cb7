import { isM365MailError, type Logger } from "@m365-mail/core";
import type { SignedIn } from "../front-door.js";
import { needsAPerson } from "../sign-in-problems.js";
import type { ClientSession } from "./client-session.js";
import { describeLoginRefusal, type LoginRefusal } from "./login-refusal.js";
import type { RelayContext } from "./relay-listener.js";
import type { UpstreamConnection } from "./upstream-connection.js";

/** The protocol's two upstream steps: connect (and greet), then sign in with XOAUTH2. */
export interface UpstreamSteps<T> {
  open(): Promise<UpstreamConnection>;
  signIn(conn: UpstreamConnection, signedIn: SignedIn): Promise<T>;
}

export type RelayLoginOutcome<T> =
  | { readonly ok: true; readonly conn: UpstreamConnection; readonly signedIn: SignedIn; readonly value: T }
  | { readonly ok: false; readonly refusal: LoginRefusal };

/**
 * One device login: the password check (`authenticate`, which holds the lockout guard) and the upstream
 * connection run side by side — connecting and the TLS handshake cost as much as the check, and a good
 * login should not pay both — then XOAUTH2 upstream. Never throws: a refusal says what to answer.
 * While Microsoft 365 throttles the mailbox (see upstream-throttling.ts), the login is answered "try
 * later" after the password check, without connecting upstream: while any mailbox is throttled, the
 * check comes first.
 */
export async function relayLogin<T>(
  session: ClientSession,
  context: RelayContext,
  log: Logger,
  username: string,
  password: string,
  steps: UpstreamSteps<T>,
): Promise<RelayLoginOutcome<T>> {
  const { throttling } = context.options;
  const protocol = session.info.protocol as "imap" | "pop3";
  const openUpstream = () => {
    const opening = steps.open().then((conn) => {
      session.attachUpstream(conn.socket);
      return conn;
    });
    opening.catch(() => {});
    return opening;
  };
  let upstream = throttling?.any() ? undefined : openUpstream();
  const dropUpstream = () =>
    upstream?.then(
      (conn) => conn.close(),
      () => {},
    );
  let signedIn: SignedIn;
  try {
    signedIn = await context.options.authenticate(username, password, session.info);
  } catch (error) {
    dropUpstream();
    const refusal = describeLoginRefusal(error, "sign-in");
    log.info(`login refused for ${username} from ${session.address}: ${refusal.code}`);
    session.result = refusal.result;
    session.errorCode = refusal.code;
    return { ok: false, refusal };
  }
  const waitMs = throttling?.remainingMs(protocol, signedIn.mailbox) ?? 0;
  if (throttling && waitMs > 0) {
    dropUpstream();
    throttling.held(protocol);
    const seconds = Math.ceil(waitMs / 1000);
    log.debug(
      `login for ${signedIn.account} from ${session.address} held: ${signedIn.mailbox} throttled, ${seconds} s left`,
    );
    session.account = signedIn.account;
    session.result = "refused";
    session.errorCode = "THROTTLED";
    return {
      ok: false,
      refusal: {
        kind: "unavailable",
        text: `Microsoft 365 is throttling ${signedIn.mailbox}; try again in about ${seconds} s.`,
        result: "refused",
        code: "THROTTLED",
      },
    };
  }
  let conn: UpstreamConnection | undefined;
  try {
    upstream ??= openUpstream();
    conn = await upstream;
    const value = await steps.signIn(conn, signedIn);
    session.account = signedIn.account;
    session.upstream = conn.label;
    session.result = "ok";
    session.errorCode = undefined;
    context.options.problems?.succeeded(signedIn.account, signedIn.auth.username, protocol);
    return { ok: true, conn, signedIn, value };
  } catch (error) {
    conn?.close();
    const refusal = describeLoginRefusal(error, "upstream");
    // Throttled at sign-in: the next logins wait out the back-off here instead of lengthening it.
    if (isM365MailError(error) && error.code === "THROTTLED" && error.retryAfterSeconds) {
      throttling?.note(protocol, signedIn.mailbox, error.retryAfterSeconds * 1000);
    }
    session.account = signedIn.account;
    if (!session.isOpen) {
      // The client hung up (or its login time ran out) while this login was under way: closing its
      // session closed the upstream too. Nothing is wrong with Microsoft 365: no warning, and the record
      // keeps why the session ended ("timeout", or "ok" for a client that just left).
      return { ok: false, refusal };
    }
    if (needsAPerson(error)) {
      // IMAP or POP switched off for the mailbox, consent missing…: logged (with the setting to change),
      // shown in status and sent to the webhook once by `problems`, not at every login of every device.
      context.options.problems?.report(signedIn.account, signedIn.auth.username, error, protocol);
      log.info(`signing in ${signedIn.account} (${signedIn.mailbox}) upstream refused: ${error.code}`);
    } else {
      // An unreachable server or an unexplained refusal: say so with the hint, each time.
      log.warn(`signing in ${signedIn.account} (${signedIn.mailbox}) upstream failed`, { error });
    }
    session.result = refusal.result;
    session.errorCode = refusal.code;
    return { ok: false, refusal };
  }
}
