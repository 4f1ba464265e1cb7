import { safeLogger } from "@m365-mail/core";
import { upstreamTimeoutMs } from "../front-door.js";
import { relayBytes } from "../relay/byte-relay.js";
import type { ClientSession } from "../relay/client-session.js";
import { LineReader, ReadError } from "../relay/line-reader.js";
import { oneLine } from "../relay/login-refusal.js";
import type { GoodbyeReason, RelayContext } from "../relay/relay-listener.js";
import { relayLogin } from "../relay/relay-login.js";
import { decodeSaslPlain } from "../relay/sasl-plain.js";
import { openPop3Upstream, signInPop3Upstream } from "./pop3-upstream.js";

const MAX_BAD_COMMANDS = 10;
const MAX_FAILED_LOGINS = 3;

const GOODBYES: Readonly<Record<GoodbyeReason, string>> = {
  busy: "-ERR [SYS/TEMP] Too many connections, try again later.\r\n",
  "not-allowed": "-ERR [SYS/PERM] Connections from your address are not allowed on this port.\r\n",
  "login-timeout": "-ERR Disconnected: no login within the time allowed.\r\n",
  idle: "-ERR Disconnected for inactivity.\r\n",
  shutdown: "-ERR [SYS/TEMP] Server shutting down.\r\n",
  "too-long": "-ERR Line too long.\r\n",
};

export function pop3Goodbye(reason: GoodbyeReason): string {
  return GOODBYES[reason];
}

/**
 * The POP3 AUTHORIZATION state (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH) answered by the bridge,
 * then the relay: after a good login the client's TRANSACTION state is the server's, byte for byte.
 */
export async function runPop3Session(session: ClientSession, context: RelayContext): Promise<void> {
  const { options } = context;
  const log = safeLogger(options.logger, "bridge pop3");
  const upstreamEndpoint = options.upstream!;
  const offersStls = () => options.security === "starttls" && !session.tls;
  const passwordAllowed = () => !offersStls();
  // TOP and UIDL: after login every command goes to the server, and Exchange Online has both. The
  // response codes are the bridge's own ([AUTH], [SYS/TEMP]). No PIPELINING: not every server has it.
  const capa = () =>
    [
      "+OK Capability list follows",
      "TOP",
      "UIDL",
      "RESP-CODES",
      "AUTH-RESP-CODE",
      ...(passwordAllowed() ? ["USER", "SASL PLAIN"] : ["STLS"]),
      "IMPLEMENTATION m365-mail-bridge",
      ".",
      "",
    ].join("\r\n");

  let reader = new LineReader(session.socket, options.limits.maxLineBytes);
  let badCommands = 0;
  let failedLogins = 0;
  let user: string | undefined;
  session.write("+OK m365-mail bridge ready.\r\n");

  const bad = (text: string): boolean => {
    session.write(`-ERR ${text}\r\n`);
    if (++badCommands < MAX_BAD_COMMANDS) return true;
    session.result = "refused";
    session.errorCode = "too-many-bad-commands";
    session.end("-ERR Too many invalid commands.\r\n");
    return false;
  };

  /** True when the session moved on to the relay (or ended). */
  const login = async (username: string, password: string): Promise<boolean> => {
    user = undefined;
    const outcome = await relayLogin(session, context, log, username, password, {
      open: () => openPop3Upstream(upstreamEndpoint, upstreamTimeoutMs(options.limits)),
      signIn: signInPop3Upstream,
    });
    if (!session.isOpen) {
      if (outcome.ok) outcome.conn.close();
      return true;
    }
    if (!outcome.ok) {
      const code = outcome.refusal.kind === "auth" ? "AUTH" : "SYS/TEMP";
      session.write(`-ERR [${code}] ${oneLine(outcome.refusal.text)}\r\n`);
      if (++failedLogins < MAX_FAILED_LOGINS) return false;
      session.end("-ERR Too many failed logins.\r\n");
      return true;
    }
    log.debug(
      `${outcome.signedIn.account} signed in from ${session.address}, relaying to ${outcome.conn.label}`,
    );
    session.write("+OK Logged in.\r\n");
    const fromClient = reader.detach();
    const { socket, rest } = outcome.conn.detach();
    await relayBytes(session, socket, fromClient, rest);
    return true;
  };

  const readLine = async (): Promise<string | undefined> => {
    try {
      return (await reader.readLine()).toString("utf8");
    } catch (error) {
      if (error instanceof ReadError && error.reason === "too-long") {
        session.result = "refused";
        session.errorCode = "line-too-long";
        session.end(GOODBYES["too-long"]);
        return undefined;
      }
      if (error instanceof ReadError) return undefined;
      throw error;
    }
  };

  for (;;) {
    const line = await readLine();
    if (line === undefined) return;
    const space = line.indexOf(" ");
    const name = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const argument = space === -1 ? "" : line.slice(space + 1);
    switch (name) {
      case "CAPA":
        session.write(capa());
        break;
      case "NOOP":
        session.write("+OK\r\n");
        break;
      case "QUIT":
        session.end("+OK Bye.\r\n");
        return;
      case "STLS":
        if (!offersStls()) {
          if (!bad("STLS is not available on this connection.")) return;
          break;
        }
        if (reader.buffered > 0) {
          // Commands behind STLS could have been injected in plain text (CVE-2011-0411 class).
          session.result = "refused";
          session.errorCode = "starttls-injection";
          session.end("-ERR Data after STLS.\r\n");
          return;
        }
        session.write("+OK Begin TLS negotiation.\r\n");
        reader.detach();
        await session.startTls(context.secureContext!, options.limits.loginTimeoutMs);
        reader = new LineReader(session.socket, options.limits.maxLineBytes);
        break;
      case "USER":
        if (!passwordAllowed()) {
          session.write("-ERR [AUTH] Use STLS before logging in.\r\n");
          break;
        }
        if (!argument) {
          if (!bad("USER needs a name.")) return;
          break;
        }
        user = argument;
        session.write("+OK\r\n");
        break;
      case "PASS":
        if (user === undefined) {
          if (!bad("USER first.")) return;
          break;
        }
        // RFC 1939: the password is the rest of the line, spaces included.
        if (await login(user, argument)) return;
        break;
      case "AUTH": {
        if (!argument) {
          // The mechanisms usable now: none before STLS on a listener that needs TLS (as CAPA says).
          session.write(passwordAllowed() ? "+OK\r\nPLAIN\r\n.\r\n" : "+OK\r\n.\r\n");
          break;
        }
        if (!passwordAllowed()) {
          session.write("-ERR [AUTH] Use STLS before logging in.\r\n");
          break;
        }
        const [mechanism = "", initial, ...extra] = argument.split(" ");
        if (mechanism.toUpperCase() !== "PLAIN" || extra.length > 0) {
          session.write("-ERR Unsupported authentication mechanism; use PLAIN.\r\n");
          break;
        }
        let response = initial;
        if (response === undefined) {
          session.write("+ \r\n");
          response = await readLine();
          if (response === undefined) return;
        }
        if (response.trim() === "*") {
          session.write("-ERR Authentication cancelled.\r\n");
          break;
        }
        const credentials = decodeSaslPlain(response === "=" ? "" : response);
        if (!credentials) {
          if (!bad("Invalid SASL PLAIN response.")) return;
          break;
        }
        if (await login(credentials.username, credentials.password)) return;
        break;
      }
      default:
        if (!bad("Unknown command, or not available before login.")) return;
    }
  }
}
