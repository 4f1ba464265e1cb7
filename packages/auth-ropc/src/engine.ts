import type { Resource } from "@m365-mail/core";
import type { SamlAssertion } from "./federation/ws-trust.js";

/** A token as an engine hands it back, before the provider caches it. */
export interface GrantedToken {
  token: string;
  expiresAt: Date;
  scopes: readonly string[];
}

/**
 * What the provider asks of an engine (msal or plain HTTP). The provider owns memory, single flight,
 * retries and the "refresh failed → one password grant" rule, so both engines behave the same.
 */
export interface TokenEngine {
  /** A token without the password: a persisted one still valid (unless `force`), or the refresh-token grant. Undefined when there is no session yet. */
  silent(
    resource: Resource,
    scopes: readonly string[],
    force: boolean,
    minValidUntil: number,
  ): Promise<GrantedToken | undefined>;
  /** The password grant (ROPC) for this resource; also stores the new refresh token. */
  passwordGrant(resource: Resource, scopes: readonly string[], password: string): Promise<GrantedToken>;
  /** The SAML bearer grant with an assertion from AD FS (federated users); also stores the refresh token. */
  assertionGrant(
    resource: Resource,
    scopes: readonly string[],
    assertion: SamlAssertion,
  ): Promise<GrantedToken>;
  /** Forgets the refresh token/session (after it was refused). */
  dropSession(): Promise<void>;
  close(): Promise<void>;
}

/** Thrown by `silent` when Entra ID refused the refresh token: the provider then signs in again. */
export class RefreshRejectedError extends Error {
  override readonly name = "RefreshRejectedError";
  constructor(readonly reason: Error) {
    super(reason.message, { cause: reason });
  }
}
