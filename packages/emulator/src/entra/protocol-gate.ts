import type { Protocol, ProtocolCheck, RequestCounters } from "../context.js";
import type { DirectoryStore } from "../directory-store.js";
import { includesPermission, resourceOfAudience } from "./scopes.js";
import type { TokenService } from "./tokens.js";

export type DenialReason = Extract<ProtocolCheck, { ok: false }>["reason"];

export interface Denial {
  at: string;
  protocol: Protocol;
  upn?: string;
  reason: DenialReason;
  message: string;
}

/** The permission each protocol's token must carry (`scp`). Graph checks scopes per call instead. */
export const PROTOCOL_SCOPE: Record<Protocol, string | undefined> = {
  imap: "IMAP.AccessAsUser.All",
  pop3: "POP.AccessAsUser.All",
  smtp: "SMTP.Send",
  graph: undefined,
};

const KEEP_DENIALS = 20;

/**
 * What Exchange checks before a protocol session may use a token: signature, expiry, revocation,
 * audience (Outlook for IMAP/POP/SMTP), the protocol's scope, and the mailbox's switch in
 * Exchange admin center → Manage email apps (and the tenant's SMTP AUTH setting).
 */
export class ProtocolGate {
  private readonly denials: Record<Protocol, Denial[]> = { imap: [], pop3: [], smtp: [], graph: [] };

  constructor(
    private readonly tokens: TokenService,
    private readonly store: DirectoryStore,
    private readonly counters: RequestCounters,
  ) {}

  authorize(token: string, protocol: Protocol, mailbox?: string): ProtocolCheck {
    const result = this.check(token, protocol, mailbox);
    this.counters.increment(`protocol.${protocol}.${result.ok ? "allowed" : "denied"}`);
    if (!result.ok) {
      const upn = (() => {
        try {
          const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
          return typeof claims?.upn === "string" ? claims.upn : undefined;
        } catch {
          return undefined;
        }
      })();
      const list = this.denials[protocol];
      list.push({
        at: new Date().toISOString(),
        protocol,
        ...(upn ? { upn } : {}),
        reason: result.reason,
        message: result.message,
      });
      if (list.length > KEEP_DENIALS) list.splice(0, list.length - KEEP_DENIALS);
    }
    return result;
  }

  lastDenials(): Record<Protocol, Denial[]> {
    return structuredClone(this.denials);
  }

  clearDenials(): void {
    for (const list of Object.values(this.denials)) list.length = 0;
  }

  private check(token: string, protocol: Protocol, mailboxUpn?: string): ProtocolCheck {
    const verified = this.tokens.verifyAccessToken(token);
    if (!verified.ok) return verified;
    const { claims, user } = verified;
    const expected = protocol === "graph" ? "graph" : "outlook";
    if (resourceOfAudience(claims.aud) !== expected) {
      const hint =
        expected === "outlook"
          ? "request the scope with its https://outlook.office.com/ prefix (a short name yields a Graph token)"
          : "request a https://graph.microsoft.com/ scope";
      return {
        ok: false,
        reason: "wrong_audience",
        message: `the token is for ${String(claims.aud)}, not ${expected}: ${hint}`,
      };
    }
    const needed = PROTOCOL_SCOPE[protocol];
    const scopes = String(claims.scp ?? "").split(" ");
    if (needed && !includesPermission(scopes, needed)) {
      return {
        ok: false,
        reason: "missing_scope",
        message: `the token's scp (${claims.scp}) lacks ${needed}`,
      };
    }
    let mailbox = user;
    if (mailboxUpn && mailboxUpn.toLowerCase() !== user.upn.toLowerCase()) {
      const target = this.store.findUser(mailboxUpn)?.user;
      const delegates = (target?.delegates ?? []).map((d) => d.toLowerCase());
      if (!target || !delegates.includes(user.upn.toLowerCase())) {
        return {
          ok: false,
          reason: "not_delegate",
          message: `${user.upn} has no access to the mailbox ${mailboxUpn}`,
        };
      }
      mailbox = target;
    }
    const tenant = this.store.findUser(user.upn)?.tenant;
    const switches = user.mailboxProtocols ?? {};
    if (protocol === "imap" && switches.imap === false) {
      return {
        ok: false,
        reason: "protocol_disabled",
        message: `IMAP is disabled for ${user.upn} (Manage email apps)`,
      };
    }
    if (protocol === "pop3" && switches.pop === false) {
      return {
        ok: false,
        reason: "protocol_disabled",
        message: `POP is disabled for ${user.upn} (Manage email apps)`,
      };
    }
    if (protocol === "smtp") {
      if (switches.smtpAuth === false) {
        return {
          ok: false,
          reason: "protocol_disabled",
          message: `SMTP AUTH is disabled for the mailbox ${user.upn}`,
        };
      }
      if (tenant?.smtpAuthEnabled === false || tenant?.securityDefaults) {
        return {
          ok: false,
          reason: "protocol_disabled",
          message: `SMTP AUTH is disabled for the tenant${tenant?.securityDefaults ? " (Security Defaults are on)" : ""}`,
        };
      }
    }
    return { ok: true, claims, user, mailbox };
  }
}
