import { safeLogger } from "@m365-mail/core";
import { upstreamTimeoutMs } from "../front-door.js";
import { relayBytes } from "../relay/byte-relay.js";
import type { ClientSession } from "../relay/client-session.js";
import { LineReader, ReadError } from "../relay/line-reader.js";
import { oneLine } from "../relay/login-refusal.js";
import type { GoodbyeReason, RelayContext } from "../relay/relay-listener.js";
import { relayLogin } from "../relay/relay-login.js";
import { decodeSaslPlain } from "../relay/sasl-plain.js";
import { ImapLiteralRefused, ImapLiteralTooLarge, ImapSyntaxError, readImapCommand } from "./imap-command.js";
import { ResponseJoints, SentCopyFilter } from "./imap-sent-copy-filter.js";
import { ImapThrottleWatch } from "./imap-throttle-watch.js";
import { openImapUpstream, signInImapUpstream } from "./imap-upstream.js";

/** Unparseable or not-before-login commands a client may send before the bridge hangs up (Dovecot: 20). */
const MAX_BAD_COMMANDS = 10;
/** Failed logins on one connection; the lockout guard in `authenticate` counts across connections. */
const MAX_FAILED_LOGINS = 3;

const GOODBYES: Readonly<Record<GoodbyeReason, string>> = {
  busy: "* BYE [UNAVAILABLE] Too many connections, try again later.\r\n",
  "not-allowed": "* BYE Connections from your address are not allowed on this port.\r\n",
  "login-timeout": "* BYE Disconnected: no login within the time allowed.\r\n",
  idle: "* BYE Autologout; idle for too long.\r\n",
  shutdown: "* BYE [UNAVAILABLE] Server shutting down.\r\n",
  "too-long": "* BYE [TOOBIG] Command line too long.\r\n",
};

export function imapGoodbye(reason: GoodbyeReason): string {
  return GOODBYES[reason];
}

/**
 * The IMAP dialogue before login, then the relay. Only what comes before authentication is parsed
 * (CAPABILITY, STARTTLS, NOOP, LOGOUT, ID, LOGIN, AUTHENTICATE PLAIN); after a good login the client's
 * tag gets OK with the server's own capabilities and bytes flow untouched.
 */
export async function runImapSession(session: ClientSession, context: RelayContext): Promise<void> {
  const { options } = context;
  const log = safeLogger(options.logger, "bridge imap");
  const upstreamEndpoint = options.upstream!;
  const offersStartTls = () => options.security === "starttls" && !session.tls;
  // A listener that offers STARTTLS takes no password before it: LOGINDISABLED, no AUTH=PLAIN (RFC 3501 §6.2.3).
  const passwordAllowed = () => !offersStartTls();
  const capabilities = () =>
    [
      "IMAP4rev1",
      "SASL-IR",
      "LITERAL+",
      "ID",
      ...(passwordAllowed() ? ["AUTH=PLAIN"] : ["STARTTLS", "LOGINDISABLED"]),
    ].join(" ");

  /** For an account with `sentCopies: "drop"`, on a server with LITERAL+ (Exchange and Dovecot). */
  const sentCopyFilters = (
    signedIn: { account: string; mailbox: string },
    serverCapabilities: string,
    watch: ImapThrottleWatch | undefined,
  ) => {
    const { sentCopies } = options;
    if (!sentCopies?.drops(signedIn.account) || !/(^| )LITERAL\+( |$)/i.test(serverCapabilities))
      return undefined;
    // The joints read the server's lines anyway: the throttling watch looks at them there.
    const fromUpstream = new ResponseJoints(watch && ((bytes, length) => watch.checkLine(bytes, length)));
    const fromClient = new SentCopyFilter({
      mailbox: signedIn.mailbox,
      sentCopies,
      joints: fromUpstream,
      onDropped: (messageId) => {
        sentCopies.leftOut(signedIn.account);
        log.info(
          `${signedIn.account}: left out the client's Sent Items upload of ${messageId}: Microsoft 365 filed its own copy when the bridge sent it`,
        );
      },
    });
    return { fromClient, fromUpstream };
  };

  let reader = new LineReader(session.socket, options.limits.maxLineBytes);
  let badCommands = 0;
  let failedLogins = 0;
  session.write(`* OK [CAPABILITY ${capabilities()}] m365-mail bridge ready.\r\n`);

  const bad = (tag: string | undefined, text: string): boolean => {
    session.write(`${tag ?? "*"} BAD ${text}\r\n`);
    if (++badCommands < MAX_BAD_COMMANDS) return true;
    session.result = "refused";
    session.errorCode = "too-many-bad-commands";
    session.end("* BYE Too many invalid commands.\r\n");
    return false;
  };

  /** Returns true when the session moved on to the relay (or ended), false to read the next command. */
  const login = async (tag: string, verb: string, username: string, password: string): Promise<boolean> => {
    const outcome = await relayLogin(session, context, log, username, password, {
      open: () => openImapUpstream(upstreamEndpoint, upstreamTimeoutMs(options.limits)),
      signIn: signInImapUpstream,
    });
    if (!session.isOpen) {
      if (outcome.ok) outcome.conn.close();
      return true;
    }
    if (!outcome.ok) {
      const code = outcome.refusal.kind === "auth" ? "AUTHENTICATIONFAILED" : "UNAVAILABLE";
      session.write(`${tag} NO [${code}] ${oneLine(outcome.refusal.text)}\r\n`);
      if (++failedLogins < MAX_FAILED_LOGINS) return false;
      session.end("* BYE Too many failed logins.\r\n");
      return true;
    }
    log.debug(
      `${outcome.signedIn.account} signed in from ${session.address}, relaying to ${outcome.conn.label}`,
    );
    session.write(`${tag} OK [CAPABILITY ${outcome.value}] ${verb} completed.\r\n`);
    const fromClient = reader.detach();
    const { socket, rest } = outcome.conn.detach();
    const { throttling } = options;
    const { mailbox } = outcome.signedIn;
    // Exchange throttling this session's commands: new logins to the mailbox wait (upstream-throttling.ts).
    const watch = throttling
      ? new ImapThrottleWatch((backoffMs) => throttling.note("imap", mailbox, backoffMs))
      : undefined;
    const filters = sentCopyFilters(outcome.signedIn, outcome.value, watch);
    await relayBytes(
      session,
      socket,
      fromClient,
      rest,
      watch && !filters ? (chunk) => watch.feed(chunk) : undefined,
      filters,
    );
    return true;
  };

  for (;;) {
    let command: Awaited<ReturnType<typeof readImapCommand>>;
    try {
      command = await readImapCommand(reader, {
        maxLiteralBytes: options.limits.maxLiteralBytes,
        goAhead: () => session.write("+ Ready for literal data.\r\n"),
        literalsAllowed: passwordAllowed,
      });
    } catch (error) {
      if (error instanceof ImapLiteralRefused) {
        session.write(`${error.tag ?? "*"} NO [PRIVACYREQUIRED] Use STARTTLS before sending a password.\r\n`);
        continue;
      }
      if (error instanceof ImapSyntaxError) {
        if (bad(error.tag, error.message)) continue;
        return;
      }
      if (error instanceof ImapLiteralTooLarge) {
        session.result = "refused";
        session.errorCode = "literal-too-large";
        session.end(`${error.tag ?? "*"} BAD [TOOBIG] Literal too large.\r\n${GOODBYES["too-long"]}`);
        return;
      }
      if (error instanceof ReadError && error.reason === "too-long") {
        session.result = "refused";
        session.errorCode = "line-too-long";
        session.end(GOODBYES["too-long"]);
        return;
      }
      if (error instanceof ReadError) return;
      throw error;
    }
    const { tag, name, args } = command;
    switch (name) {
      case "CAPABILITY":
        session.write(`* CAPABILITY ${capabilities()}\r\n${tag} OK Capability completed.\r\n`);
        break;
      case "NOOP":
        session.write(`${tag} OK NOOP completed.\r\n`);
        break;
      case "ID":
        session.write(`* ID ("name" "m365-mail bridge")\r\n${tag} OK ID completed.\r\n`);
        break;
      case "LOGOUT":
        session.end(`* BYE Logging out.\r\n${tag} OK Logout completed.\r\n`);
        return;
      case "STARTTLS": {
        if (!offersStartTls()) {
          if (!bad(tag, "STARTTLS is not available on this connection.")) return;
          break;
        }
        if (reader.buffered > 0) {
          // Commands sent behind STARTTLS could have been injected in plain text (CVE-2011-0411 class).
          session.result = "refused";
          session.errorCode = "starttls-injection";
          session.end(`${tag} BAD Data after STARTTLS.\r\n`);
          return;
        }
        session.write(`${tag} OK Begin TLS negotiation now.\r\n`);
        reader.detach();
        await session.startTls(context.secureContext!, options.limits.loginTimeoutMs);
        reader = new LineReader(session.socket, options.limits.maxLineBytes);
        break;
      }
      case "LOGIN": {
        if (!passwordAllowed()) {
          session.write(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS before logging in.\r\n`);
          break;
        }
        if (args.length !== 2) {
          if (!bad(tag, "LOGIN takes a user name and a password.")) return;
          break;
        }
        if (await login(tag, "LOGIN", args[0]!, args[1]!)) return;
        break;
      }
      case "AUTHENTICATE": {
        if (!passwordAllowed()) {
          session.write(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS before logging in.\r\n`);
          break;
        }
        if (args[0]?.toUpperCase() !== "PLAIN" || args.length > 2) {
          session.write(`${tag} NO Unsupported authentication mechanism; use PLAIN.\r\n`);
          break;
        }
        let response = args[1];
        if (response === undefined) {
          session.write("+ \r\n");
          try {
            response = (await reader.readLine()).toString("utf8");
          } catch (error) {
            if (error instanceof ReadError && error.reason === "too-long") {
              session.end(GOODBYES["too-long"]);
            }
            return;
          }
        }
        if (response.trim() === "*") {
          session.write(`${tag} BAD Authentication cancelled.\r\n`);
          break;
        }
        const credentials = decodeSaslPlain(response === "=" ? "" : response);
        if (!credentials) {
          if (!bad(tag, "Invalid SASL PLAIN response.")) return;
          break;
        }
        if (await login(tag, "AUTHENTICATE", credentials.username, credentials.password)) return;
        break;
      }
      default:
        if (!bad(tag, `${oneLine(name).slice(0, 40)} is not available before login.`)) return;
    }
  }
}
