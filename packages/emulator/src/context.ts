/**
 * The seams between the emulator's parts (Entra, Graph, SMTP, Dovecot) — written first so that each
 * part can be built on its own. `startEmulator()` (emulator.ts) creates one EmulatorContext and hands it
 * to every part.
 */
import type { Directory, DirectoryUser } from "./directory.js";

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
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" | "revoked" | "unknown_user" | "disabled_user"; message: string };

export type Protocol = "imap" | "pop3" | "smtp" | "graph";

/** One fault, armed through the admin API; it fires on matching requests `times` times (default 1). */
export interface FaultSpec {
  /** Which part: "entra", "graph", "upload", "smtp"; or "*" for all. */
  target: string;
  /** Substring of the request path that must match (HTTP parts); optional. */
  path?: string;
  kind: "delay" | "status429" | "status500" | "status503" | "status504" | "malformedJson" | "reset" | "emptyToken";
  times?: number;
  delayMs?: number;
  retryAfterSeconds?: number;
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
  log(message: string): void;
}
