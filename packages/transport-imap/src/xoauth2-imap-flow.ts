import { ImapFlow } from "imapflow";

/** Which SASL mechanism to use when the server offers both. */
export type SaslMechanism = "XOAUTH2" | "OAUTHBEARER";

type Authenticate = (this: ImapFlow) => Promise<boolean>;

/**
 * imapflow chooses OAUTHBEARER whenever a server offers it and has no option to pick XOAUTH2
 * (`auth.loginMethod` only applies to passwords — see imapflow `commands/authenticate.js`).
 * Exchange Online documents XOAUTH2, so just before AUTHENTICATE we hide the mechanism we do not want
 * from the capability list imapflow decides on. A server offering only one mechanism gets that one.
 */
export class SaslPreferringImapFlow extends ImapFlow {
  preferredMechanism: SaslMechanism = "XOAUTH2";
  /** The mechanism this connection signed in with, once connected. */
  usedMechanism: SaslMechanism | undefined;

  async authenticate(): Promise<boolean> {
    const other = this.preferredMechanism === "XOAUTH2" ? "AUTH=OAUTHBEARER" : "AUTH=XOAUTH2";
    const preferred = `AUTH=${this.preferredMechanism}`;
    if (this.capabilities.has(preferred) && this.capabilities.has(other)) this.capabilities.delete(other);
    this.usedMechanism = this.capabilities.has("AUTH=OAUTHBEARER") ? "OAUTHBEARER" : "XOAUTH2";
    const base = (ImapFlow.prototype as unknown as { authenticate?: Authenticate }).authenticate;
    if (typeof base !== "function") {
      // imapflow renamed its internal step: fall back to its own choice rather than break sign-in.
      throw new Error("imapflow internals changed: ImapFlow.prototype.authenticate is missing");
    }
    return base.call(this);
  }
}
