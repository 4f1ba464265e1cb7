import {
  encodeXOAuth2,
  explainOutlookAuthFailure,
  type M365MailError,
  registerSecret,
  throttlingIn,
} from "@m365-mail/core";
import type { SignedIn, UpstreamEndpoint } from "../front-door.js";
import { oneLine } from "./login-refusal.js";
import { UpstreamConnection } from "./upstream-connection.js";

/** What differs between IMAP and POP3 while the bridge opens the upstream connection. */
export interface UpstreamGreeting {
  /** True for the server's "ready" greeting (`* OK`, `+OK`). */
  isReady(line: string): boolean;
  /** "STARTTLS" (IMAP) or "STLS" (POP3), for messages. */
  startTlsCommand: string;
  /** Asks for STARTTLS/STLS; the refusal's text, or undefined when the server said go ahead. */
  askStartTls(conn: UpstreamConnection): Promise<string | undefined>;
  /** The error for a server that is not the expected one (the hint names the upstream setting). */
  refused(conn: UpstreamConnection, what: string): M365MailError;
}

/** Opens TLS (or plain + STARTTLS/STLS) to the upstream and reads its greeting; closes it on failure. */
export async function openUpstream(
  endpoint: UpstreamEndpoint,
  timeoutMs: number,
  greeting: UpstreamGreeting,
): Promise<UpstreamConnection> {
  const conn = await UpstreamConnection.open(endpoint, timeoutMs);
  try {
    const first = await conn.readLine();
    if (!greeting.isReady(first)) throw greeting.refused(conn, `greeted with "${oneLine(first)}"`);
    if (endpoint.security === "starttls") {
      const refusal = await greeting.askStartTls(conn);
      if (refusal !== undefined)
        throw greeting.refused(conn, `refused ${greeting.startTlsCommand}: ${oneLine(refusal)}`);
      await conn.startTls();
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** One XOAUTH2 attempt: the value on success, or the server's refusal text (`final` stops a retry). */
export type XOAuth2Attempt<T> = (
  xoauth2: string,
) => Promise<{ value: T } | { refusal: string; final?: boolean }>;

/**
 * Signs in upstream as the signed-in user (`user=` the mailbox): with the cached token, then once more
 * with a refreshed one if the server refuses it (revoked or rotated). A refusal after both is explained
 * from the token's claims (IMAP/POP turned off, permission missing, no access to a shared mailbox).
 */
export async function signInWithToken<T>(
  protocol: "imap" | "pop3",
  signedIn: SignedIn,
  attempt: XOAuth2Attempt<T>,
): Promise<T> {
  let refusal = "";
  let lastToken = "";
  for (const forceRefresh of [false, true]) {
    const { token } = await signedIn.auth.getAccessToken(
      "outlook",
      forceRefresh ? { forceRefresh } : undefined,
    );
    // Access tokens change hourly: the redactor keeps them in its bounded set (issue 12, item 6).
    registerSecret(token, { rotating: true });
    lastToken = token;
    const outcome = await attempt(encodeXOAuth2(signedIn.mailbox, token));
    if ("value" in outcome) return outcome.value;
    refusal = outcome.refusal;
    // Throttled: a fresh token changes nothing, and one more sign-in only prolongs the throttling.
    if (outcome.final || throttlingIn(outcome.refusal)) break;
  }
  throw explainOutlookAuthFailure({
    protocol,
    token: lastToken,
    username: signedIn.auth.username,
    mailbox: signedIn.mailbox,
    cloud: signedIn.auth.cloud,
    serverText: oneLine(refusal),
    source: "bridge",
  });
}
