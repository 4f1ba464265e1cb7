import { M365MailError } from "@m365-mail/core";
import type { SignedIn, UpstreamEndpoint } from "../front-door.js";
import type { UpstreamConnection } from "../relay/upstream-connection.js";
import { openUpstream, signInWithToken, type UpstreamGreeting } from "../relay/upstream-sign-in.js";

const POP3_GREETING: UpstreamGreeting = {
  isReady: (line) => line.startsWith("+OK"),
  startTlsCommand: "STLS",
  async askStartTls(conn) {
    conn.write("STLS\r\n");
    const answer = await conn.readLine();
    return answer.startsWith("+OK") ? undefined : answer;
  },
  refused: (conn, what) =>
    new M365MailError("SERVER_ERROR", `the POP3 server ${conn.label} ${what}`, {
      source: "bridge",
      hint: "Check the bridge's POP3 upstream (Exchange Online: outlook.office365.com, 995, tls).",
    }),
};

/** Opens the POP3 connection to Microsoft 365: TLS (995) or STLS, and the greeting read. */
export function openPop3Upstream(endpoint: UpstreamEndpoint, timeoutMs: number): Promise<UpstreamConnection> {
  return openUpstream(endpoint, timeoutMs, POP3_GREETING);
}

/**
 * `AUTH XOAUTH2` in Exchange's two-step form (the command, the server's `+`, then the string; Exchange
 * refuses the one-line form), answering a challenge with an empty line so the session stays in step.
 */
export function signInPop3Upstream(conn: UpstreamConnection, signedIn: SignedIn): Promise<void> {
  return signInWithToken("pop3", signedIn, async (xoauth2) => {
    conn.write("AUTH XOAUTH2\r\n");
    const first = await conn.readLine();
    // No go-ahead: the server does not take XOAUTH2 at all, and a fresh token would not change that.
    if (!first.startsWith("+") || first.startsWith("+OK")) return { refusal: first, final: true };
    conn.write(`${xoauth2}\r\n`);
    let answer = await conn.readLine();
    if (answer.startsWith("+") && !answer.startsWith("+OK")) {
      conn.write("\r\n");
      answer = await conn.readLine();
    }
    return answer.startsWith("+OK") ? { value: undefined } : { refusal: answer };
  });
}
