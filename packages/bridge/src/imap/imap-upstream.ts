import { encodeXOAuth2, explainOutlookAuthFailure, M365MailError, registerSecret } from "@m365-mail/core";
import type { SignedIn, UpstreamEndpoint } from "../front-door.js";
import { oneLine } from "../relay/login-refusal.js";
import { UpstreamConnection } from "../relay/upstream-connection.js";

/**
 * Opens the IMAP connection to Microsoft 365: TLS (993) or STARTTLS, and the greeting read. Started as
 * soon as a client sends its login, alongside the password check, so a good login does not wait for it.
 */
export async function openImapUpstream(
  endpoint: UpstreamEndpoint,
  timeoutMs: number,
): Promise<UpstreamConnection> {
  const conn = await UpstreamConnection.open(endpoint, timeoutMs);
  try {
    const greeting = await conn.readLine();
    if (!/^\* OK\b/i.test(greeting)) throw refused(conn, `greeted with "${oneLine(greeting)}"`);
    if (endpoint.security === "starttls") {
      conn.write("B1 STARTTLS\r\n");
      const answer = await tagged(conn, "B1");
      if (answer.status !== "OK") throw refused(conn, `refused STARTTLS: ${answer.text}`);
      await conn.startTls();
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/**
 * `AUTHENTICATE XOAUTH2` as the signed-in user (`user=` the mailbox), once more with a refreshed token if
 * the server refuses the first, then the server's capabilities after login (from the OK's response code,
 * else a `CAPABILITY` command) — the client's LOGIN is answered with those.
 */
export async function signInImapUpstream(conn: UpstreamConnection, signedIn: SignedIn): Promise<string> {
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
    conn.write(`B2 AUTHENTICATE XOAUTH2 ${encodeXOAuth2(signedIn.mailbox, token)}\r\n`);
    let capabilities = "";
    for (;;) {
      const line = await conn.readLine();
      if (line.startsWith("+")) {
        // A challenge with the reason (base64 JSON): an empty answer gets the final NO.
        conn.write("\r\n");
        continue;
      }
      const untagged = /^\* CAPABILITY (.*)$/i.exec(line);
      if (untagged) capabilities = untagged[1]!;
      if (!line.startsWith("B2 ")) continue;
      const answer = parseTagged(line);
      if (answer.status === "OK") {
        const inCode = /^\[CAPABILITY ([^\]]*)\]/i.exec(answer.text);
        if (inCode) return inCode[1]!;
        if (capabilities) return capabilities;
        return await fetchCapabilities(conn);
      }
      refusal = answer.text;
      break;
    }
  }
  throw explainOutlookAuthFailure({
    protocol: "imap",
    token: lastToken,
    username: signedIn.auth.username,
    mailbox: signedIn.mailbox,
    cloud: signedIn.auth.cloud,
    serverText: oneLine(refusal),
    source: "bridge",
  });
}

async function fetchCapabilities(conn: UpstreamConnection): Promise<string> {
  conn.write("B3 CAPABILITY\r\n");
  let capabilities = "IMAP4rev1";
  for (;;) {
    const line = await conn.readLine();
    const untagged = /^\* CAPABILITY (.*)$/i.exec(line);
    if (untagged) capabilities = untagged[1]!;
    if (line.startsWith("B3 ")) return capabilities;
  }
}

async function tagged(conn: UpstreamConnection, tag: string): Promise<{ status: string; text: string }> {
  for (;;) {
    const line = await conn.readLine();
    if (line.startsWith(`${tag} `)) return parseTagged(line);
  }
}

function parseTagged(line: string): { status: string; text: string } {
  const [, status = "", text = ""] = /^\S+ (\S+) ?(.*)$/.exec(line) ?? [];
  return { status: status.toUpperCase(), text };
}

function refused(conn: UpstreamConnection, what: string): M365MailError {
  return new M365MailError("SERVER_ERROR", `the IMAP server ${conn.label} ${what}`, {
    source: "bridge",
    hint: "Check the bridge's IMAP upstream (Exchange Online: outlook.office365.com, 993, tls).",
  });
}
