/**
 * The seams between the emulator's parts (Entra, Graph, SMTP, Dovecot) — written first so that each
 * part can be built on its own. `startEmulator()` (emulator.ts) creates one EmulatorContext and hands it
 * to every part.
 */
import type { Directory, DirectoryUser } from "./directory.js";
import type { SendingQuota } from "./sending-quota.js";

/** Claims of an access token the emulator issued (shape of Microsoft's v1/v2 access tokens). */
export interface IssuedTokenClaims {
  aud: string; // "https://graph.microsoft.com" or "https://outlook.office.com"
  scp: string; // space-separated short names: "Mail.Read Mail.Send"
  upn: string;
  tid: string;
  oid: string;
  appid: string;
  iat: number;
  exp: number;
  [claim: string]: unknown;
}

export type TokenCheck =
  | { ok: true; claims: IssuedTokenClaims; user: DirectoryUser }
  | {
      ok: false;
      reason: "malformed" | "bad_signature" | "expired" | "revoked" | "unknown_user" | "disabled_user";
      message: string;
    };

export type Protocol = "imap" | "pop3" | "smtp" | "graph";

/** One fault, armed through the admin API; it fires on matching requests `times` times (default 1). */
export interface FaultSpec {
  /**
   * Which part: "entra", "graph", "upload", "smtp", "imap" (see throttled); "sentitems" (filing, see
   * lateSentItems); or "*" for every HTTP and SMTP part.
   */
  target: string;
  /** Substring of the request path that must match (HTTP parts); optional. */
  path?: string;
  kind:
    | "delay"
    /** Graph only: an unexpected 400 refusal (`BadRequest`), which a client must not retry. */
    | "status400"
    | "status429"
    | "status500"
    | "status503"
    | "status504"
    | "malformedJson"
    | "reset"
    | "emptyToken"
    /**
     * Target "sentitems" only: the next copy filed in Sent Items (after a Graph or SMTP send) is filed
     * `delayMs` late, or never without `delayMs`; the message itself is delivered as usual. `path`
     * matches "<part>:<upn>", e.g. "graph:" or ":support@contoso.com".
     */
    | "lateSentItems"
    /**
     * Target "imap" only: Exchange's `NO Request is throttled. Suggested Backoff Time: <ms> milliseconds`
     * (`retryAfterSeconds`, default 90) for the next sign-in (`path` "login", or no path) or for every
     * command of the next session that signs in (`path` "command"); either way the user's new sign-ins
     * are answered so until the back-off has passed.
     */
    | "throttled";
  times?: number;
  delayMs?: number;
  retryAfterSeconds?: number;
  /**
   * Fire the status fault AFTER the request was processed (e.g. sendMail delivered, client sees 504),
   * so a test can prove a client does not send twice. Graph and upload parts; default false.
   */
  after?: boolean;
}

export interface FaultRegistry {
  arm(fault: FaultSpec): void;
  clear(): void;
  /** Returns the fault to apply to this request (and counts it down), or undefined. */
  take(target: string, path: string): FaultSpec | undefined;
}

export interface RequestCounters {
  increment(name: string, by?: number): void;
  snapshot(): Record<string, number>;
  reset(): void;
}

export interface TlsMaterial {
  /** PEM of the emulator's own CA: clients trust this. */
  caPem: string;
  caPath: string;
  /** Server key + certificate for 127.0.0.1, localhost and the emulator's host names, signed by the CA. */
  keyPem: string;
  certPem: string;
}

export interface EmulatorContext {
  readonly host: string; // "127.0.0.1"
  readonly dataDir: string;
  readonly tls: TlsMaterial;
  directory(): Directory;
  findUser(upn: string): DirectoryUser | undefined;
  /** Verifies signature, expiry and revocation of an access token the emulator issued. */
  verifyAccessToken(token: string): TokenCheck;
  faults: FaultRegistry;
  counters: RequestCounters;
  /** Recipients each mailbox sent in the rolling day, over SMTP and Graph together (Exchange's daily limit). */
  readonly sendingQuota: SendingQuota;
  log(message: string): void;
  /** Origin of the Entra part, e.g. "https://127.0.0.1:44443" (added by the Entra part). */
  readonly authorityHost: string;
  /** Id of the first tenant of the directory (the demo tenant by default). */
  readonly tenantId: string;
  /**
   * Everything Exchange checks before a protocol session may use a token: `verifyAccessToken`, plus the
   * audience (Outlook for imap/pop3/smtp, Graph for graph), the protocol's scope (IMAP.AccessAsUser.All,
   * POP.AccessAsUser.All, SMTP.Send) and the mailbox switches (Manage email apps, tenant SMTP AUTH).
   * `mailbox`: the mailbox being opened when it is not the token's user (shared mailbox): the user must be
   * one of its delegates. Refusals are recorded for `GET /_admin/last-denials`.
   */
  authorizeProtocol(token: string, protocol: Protocol, mailbox?: string): ProtocolCheck;
  /** Called with the UPN whenever a user's tokens are revoked (admin API): end their sessions. */
  onTokensRevoked(listener: (upn: string) => void): () => void;
  /**
   * Called when an IMAP/POP3 login was allowed by introspection, with the token's expiry: the Dovecot
   * part ends the user's sessions then, as Exchange ends a session whose token expired.
   */
  onProtocolLogin(
    listener: (login: { upn: string; protocol: Protocol; expiresAt: Date }) => void,
  ): () => void;
}

export type ProtocolCheck =
  | { ok: true; claims: IssuedTokenClaims; user: DirectoryUser; mailbox: DirectoryUser }
  | {
      ok: false;
      reason:
        | Extract<TokenCheck, { ok: false }>["reason"]
        | "wrong_audience"
        | "missing_scope"
        | "protocol_disabled"
        | "not_delegate";
      message: string;
    };
