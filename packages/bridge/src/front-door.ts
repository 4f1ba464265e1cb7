import type { SecureContextOptions } from "node:tls";
import type { Logger, TokenProvider } from "@m365-mail/core";
import type { UpstreamThrottling } from "./relay/upstream-throttling.js";
import type { SentCopies } from "./sent-copies.js";
import type { SignInProblems } from "./sign-in-problems.js";

/**
 * The contract between the bridge's listeners (SMTP front door, IMAP and POP3 relays) and the part that
 * knows the accounts (credentials, lockout guard, token providers). A front door never sees the config
 * file: it gets an `authenticate` function, which `startBridge` swaps on reload without touching open
 * sessions.
 */
export type BridgeProtocol = "smtp" | "imap" | "pop3";

export interface ClientInfo {
  /** The client's IP address as the socket reports it. */
  readonly address: string;
  readonly port: number;
  readonly protocol: BridgeProtocol;
  /** True once the connection is encrypted (implicit TLS or after STARTTLS/STLS). */
  readonly tls: boolean;
}

/** Who a successful device login acts as. */
export interface SignedIn {
  /** The bridge account's name, for logs and metrics (never a secret). */
  readonly account: string;
  /** The address for XOAUTH2 `user=`: the signed-in user, or the shared mailbox a delegate opens. */
  readonly mailbox: string;
  /** Tokens of the Microsoft 365 user; IMAP/POP3/SMTP use resource "outlook". */
  readonly auth: TokenProvider;
}

/**
 * Checks a device's username and password and says whom to act as. Throws `M365MailError` when the
 * login is refused (AUTH_FAILED for a wrong password, or the sign-in problem's own code); its `message`
 * is safe to show to the client. Implements the lockout guard, so front doors just call it.
 */
export type Authenticate = (username: string, password: string, client: ClientInfo) => Promise<SignedIn>;

/** The Microsoft 365 (or emulator) server a relay connects to after the device logged in. */
export interface UpstreamEndpoint {
  readonly host: string;
  readonly port: number;
  /** Exchange Online: IMAP 993 and POP3 995 are "tls"; SMTP 587 is "starttls". */
  readonly security: "tls" | "starttls";
  /** Extra CA to trust (the emulator's); the system store otherwise. */
  readonly ca?: string | Buffer;
  readonly servername?: string;
}

/** How the listener talks to clients: plain text, STARTTLS/STLS offered, or TLS from the first byte. */
export type ListenerSecurity = "plain" | "starttls" | "tls";

export interface FrontDoorLimits {
  /** Open connections on this listener. */
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** A connection idle this long is closed (after login too). */
  readonly idleTimeoutMs: number;
  /** Time allowed from connect to a successful login. */
  readonly loginTimeoutMs: number;
  /** Longest command line accepted before login. */
  readonly maxLineBytes: number;
  /** Largest IMAP literal accepted before login (a LOGIN password in `{n}` form). */
  readonly maxLiteralBytes: number;
}

/**
 * How long the upstream (Exchange) may take to connect or answer during a login: well inside the
 * client's login time, so that an unreachable server is answered NO [UNAVAILABLE] / -ERR [SYS/TEMP]
 * instead of the login timer ending the session as if the client were too slow.
 */
export function upstreamTimeoutMs(limits: FrontDoorLimits): number {
  return Math.max(1_000, Math.min(15_000, Math.floor(limits.loginTimeoutMs / 2)));
}

/** One line per session, written when it ends. */
/** `192.0.2.7:51234`, `[2001:db8::7]:51234`: the client as session lines and logs name it. */
export function clientLabel(address: string, port: number | undefined): string {
  return `${address.includes(":") ? `[${address}]` : address}:${port ?? 0}`;
}

export interface SessionRecord {
  readonly protocol: BridgeProtocol;
  /** Address and port, see clientLabel. */
  readonly client: string;
  readonly account?: string;
  readonly upstream?: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  /** "ok", "auth-failed", "refused" (limits, network), "upstream-failed", "timeout", "error". */
  readonly result: string;
  readonly errorCode?: string;
}

export interface FrontDoorOptions {
  readonly host: string;
  readonly port: number;
  readonly security: ListenerSecurity;
  /** Key and certificate for "starttls" and "tls". */
  readonly tls?: SecureContextOptions;
  readonly authenticate: Authenticate;
  /** For relays: where to go after login. */
  readonly upstream?: UpstreamEndpoint;
  /** False for a client that may not use this listener (a plaintext listener's network allowlist). */
  readonly isClientAllowed?: (address: string) => boolean;
  readonly limits: FrontDoorLimits;
  readonly logger: Logger;
  readonly onSession?: (record: SessionRecord) => void;
  /** Relays: Microsoft 365's back-offs per mailbox, shared by every listener (logins wait them out). */
  readonly throttling?: UpstreamThrottling;
  /** What the bridge sent, so that IMAP can leave out the client's own Sent Items copy (`sentCopies`). */
  readonly sentCopies?: SentCopies;
  /** Relays: an upstream login refused for a reason a person must fix (IMAP off…), and its end. */
  readonly problems?: Pick<SignInProblems, "report" | "succeeded">;
}

export interface FrontDoor {
  readonly protocol: BridgeProtocol;
  readonly address: { host: string; port: number };
  readonly openSessions: number;
  /**
   * Stops accepting; open sessions get up to `drainMs` to finish, then are closed. The port is free as
   * soon as `close()` returns, before the drain: a reload binds the replacement listener at once.
   */
  close(options?: { drainMs?: number }): Promise<void>;
  /**
   * Presents a new key and certificate to connections from now on (implicit TLS and STARTTLS); sessions
   * already open keep theirs. A certificate renewed in place needs no new listener.
   */
  useCertificate(tls: { key: string; cert: string }): void;
}
