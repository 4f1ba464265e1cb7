import { M365MailError } from "@m365-mail/core";
import type { SignedIn, UpstreamEndpoint } from "../front-door.js";
import type { UpstreamConnection } from "../relay/upstream-connection.js";
import { openUpstream, signInWithToken, type UpstreamGreeting } from "../relay/upstream-sign-in.js";

const IMAP_GREETING: UpstreamGreeting = {
  isReady: (line) => /^\* OK\b/i.test(line),
  startTlsCommand: "STARTTLS",
  async askStartTls(conn) {
    conn.write("B1 STARTTLS\r\n");
    const answer = await tagged(conn, "B1");
    return answer.status === "OK" ? undefined : answer.text;
  },
  refused: (conn, what) =>
    new M365MailError("SERVER_ERROR", `the IMAP server ${conn.label} ${what}`, {
      source: "bridge",
      hint: "Check the bridge's IMAP upstream (Exchange Online: outlook.office365.com, 993, tls).",
    }),
};

/**
 * Opens the IMAP connection to Microsoft 365: TLS (993) or STARTTLS, and the greeting read. Started as
 * soon as a client sends its login, alongside the password check, so a good login does not wait for it.
 */
export function openImapUpstream(endpoint: UpstreamEndpoint, timeoutMs: number): Promise<UpstreamConnection> {
  return openUpstream(endpoint, timeoutMs, IMAP_GREETING);
}

/**
 * `AUTHENTICATE XOAUTH2` (SASL-IR), then the server's capabilities after login (from the OK's response
 * code, else a `CAPABILITY` command): the client's LOGIN is answered with those.
 */
export function signInImapUpstream(conn: UpstreamConnection, signedIn: SignedIn): Promise<string> {
  return signInWithToken<string>("imap", signedIn, async (xoauth2) => {
    conn.write(`B2 AUTHENTICATE XOAUTH2 ${xoauth2}\r\n`);
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
      if (answer.status !== "OK") return { refusal: answer.text };
      const inCode = /^\[CAPABILITY ([^\]]*)\]/i.exec(answer.text);
      return { value: inCode?.[1] ?? (capabilities || (await fetchCapabilities(conn))) };
    }
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
