import { encodeXOAuth2, explainOutlookAuthFailure, M365MailError, registerSecret } from "@m365-mail/core";
import type { SignedIn, UpstreamEndpoint } from "../front-door.js";
import { oneLine } from "../relay/login-refusal.js";
import { UpstreamConnection } from "../relay/upstream-connection.js";

/** Opens the POP3 connection to Microsoft 365: TLS (995) or STLS, and the greeting read. */
export async function openPop3Upstream(
  endpoint: UpstreamEndpoint,
  timeoutMs: number,
): Promise<UpstreamConnection> {
  const conn = await UpstreamConnection.open(endpoint, timeoutMs);
  try {
    const greeting = await conn.readLine();
    if (!greeting.startsWith("+OK")) throw refused(conn, `greeted with "${oneLine(greeting)}"`);
    if (endpoint.security === "starttls") {
      conn.write("STLS\r\n");
      const answer = await conn.readLine();
      if (!answer.startsWith("+OK")) throw refused(conn, `refused STLS: ${oneLine(answer)}`);
      await conn.startTls();
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/**
 * `AUTH XOAUTH2` in Exchange's two-step form (the command, the server's `+`, then the string; Exchange
 * refuses the one-line form), answering a challenge with an empty line so the session stays in step;
 * once more with a refreshed token if the first is refused.
 */
export async function signInPop3Upstream(conn: UpstreamConnection, signedIn: SignedIn): Promise<void> {
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
    conn.write("AUTH XOAUTH2\r\n");
    const first = await conn.readLine();
    if (!first.startsWith("+") || first.startsWith("+OK")) {
      refusal = first;
      break;
    }
    conn.write(`${encodeXOAuth2(signedIn.mailbox, token)}\r\n`);
    let answer = await conn.readLine();
    if (answer.startsWith("+") && !answer.startsWith("+OK")) {
      conn.write("\r\n");
      answer = await conn.readLine();
    }
    if (answer.startsWith("+OK")) return;
    refusal = answer;
  }
  throw explainOutlookAuthFailure({
    protocol: "pop3",
    token: lastToken,
    username: signedIn.auth.username,
    mailbox: signedIn.mailbox,
    cloud: signedIn.auth.cloud,
    serverText: oneLine(refusal),
    source: "bridge",
  });
}

function refused(conn: UpstreamConnection, what: string): M365MailError {
  return new M365MailError("SERVER_ERROR", `the POP3 server ${conn.label} ${what}`, {
    source: "bridge",
    hint: "Check the bridge's POP3 upstream (Exchange Online: outlook.office365.com, 995, tls).",
  });
}
