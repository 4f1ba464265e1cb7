import type { EmulatorContext } from "../context.js";
import type { DirectoryTenant, DirectoryUser } from "../directory.js";
import { type SmtpReply, smtpReplies } from "./smtp-replies.js";

/** Who an SMTP session authenticated as. */
export interface SmtpPrincipal {
  /** The mailbox named by `user=`, lowercased: the one that sends and keeps Sent Items. */
  readonly mailbox: string;
  /** The signed-in user the token belongs to (the delegate, for a shared mailbox). */
  readonly tokenUser: string;
  /** Addresses this session may put in MAIL FROM and From:, lowercased. */
  readonly sendAs: ReadonlySet<string>;
}

export type SmtpAuthResult =
  | { ok: true; principal: SmtpPrincipal }
  | { ok: false; reply: SmtpReply; reason: string };

export function tenantOf(ctx: EmulatorContext, upn: string): DirectoryTenant | undefined {
  const key = upn.toLowerCase();
  return ctx.directory().tenants.find((t) => t.users.some((u) => u.upn.toLowerCase() === key));
}

/** Mailboxes the user may send as: its own, and every (shared) mailbox that lists it as a delegate. */
export function sendAsAddresses(ctx: EmulatorContext, user: DirectoryUser): Set<string> {
  const self = user.upn.toLowerCase();
  const out = new Set([self]);
  for (const tenant of ctx.directory().tenants) {
    for (const other of tenant.users) {
      if (other.delegates?.some((d) => d.toLowerCase() === self)) out.add(other.upn.toLowerCase());
    }
  }
  return out;
}

/**
 * `AUTH XOAUTH2` as Exchange Online answers it. The emulator's protocol gate runs the checks (token,
 * Outlook audience, SMTP.Send, delegate for `user=`, Manage email apps, tenant SMTP AUTH); this maps
 * its verdict to Exchange's reply. Every failure is a single `535` — Exchange sends no `334`
 * challenge first (a client that sends one line and expects 235 gets 535 straight away).
 */
export function checkSmtpAuth(ctx: EmulatorContext, username: string, accessToken: string): SmtpAuthResult {
  const mailbox = username.trim().toLowerCase();
  const check = ctx.authorizeProtocol(accessToken, "smtp", mailbox);
  if (!check.ok) {
    if (check.reason !== "protocol_disabled") {
      return {
        ok: false,
        reply: smtpReplies.authUnsuccessful(),
        reason: `${check.reason}: ${check.message}`,
      };
    }
    // The gate says "disabled"; Exchange's text says whether the mailbox or the tenant switch is off.
    const user = tokenUpn(accessToken);
    const mailboxOff = user !== undefined && ctx.findUser(user)?.mailboxProtocols?.smtpAuth === false;
    return {
      ok: false,
      reply: smtpReplies.smtpAuthDisabled(mailboxOff ? "Mailbox" : "Tenant"),
      reason: `${check.reason}: ${check.message}`,
    };
  }
  const { user } = check;
  if (
    check.mailbox.upn.toLowerCase() !== user.upn.toLowerCase() &&
    check.mailbox.mailboxProtocols?.smtpAuth === false
  ) {
    return {
      ok: false,
      reply: smtpReplies.smtpAuthDisabled("Mailbox"),
      reason: `SMTP AUTH is disabled for the mailbox ${check.mailbox.upn}`,
    };
  }
  return {
    ok: true,
    principal: {
      mailbox: check.mailbox.upn.toLowerCase(),
      tokenUser: user.upn.toLowerCase(),
      sendAs: sendAsAddresses(ctx, user),
    },
  };
}

// Only to pick the wording of a refusal the gate already decided; never a trust decision.
function tokenUpn(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      upn?: unknown;
    };
    return typeof claims.upn === "string" ? claims.upn : undefined;
  } catch {
    return undefined;
  }
}
