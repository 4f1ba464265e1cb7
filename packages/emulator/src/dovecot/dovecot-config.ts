/**
 * The configuration the emulator writes for its own Dovecot instance: own base_dir, state_dir and log
 * file (no system paths, the system's /etc/dovecot is never read), implicit-TLS ports like Exchange's
 * 993/995, XOAUTH2 (Exchange offers no OAUTHBEARER) checked by introspection against the emulator's
 * Entra part, and the mailbox store's Maildir++ layout. Checked against Dovecot 2.3.19 (Debian 12).
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { M365MailError } from "@m365-mail/core";
import type { MailOwner } from "../store/mail-owner.js";
import { WELL_KNOWN_FOLDERS } from "../store/maildir-names.js";

export const DOVECOT_SOURCE = "emulator-dovecot";

export type DovecotProtocol = "imap" | "pop3";

export interface DovecotPorts {
  /** IMAP over implicit TLS (outlook.office365.com:993 style). */
  imaps: number;
  /** POP3 over implicit TLS (995 style). */
  pop3s: number;
  /** Plain IMAP port offering STARTTLS; 0 = none. */
  imapStartTls: number;
  /** Plain POP3 port offering STLS; 0 = none. */
  pop3StartTls: number;
  /** LMTP for delivery through Dovecot; 0 = none. */
  lmtp: number;
}

export interface DovecotConfigInput {
  /** The config folder (`<dataDir>/dovecot`). */
  dir: string;
  /** The mail store's root (`<dataDir>/mail`). */
  mailRoot: string;
  /** uid/gid of the mail processes: the mail store's owner. */
  owner: MailOwner;
  /** Dovecot's master runs as root (else everything runs as the current user). */
  asRoot: boolean;
  /** User for Dovecot's internal processes (auth reads the files below as this user). */
  internalUser: string;
  internalGroup: string;
  /** User for the login processes. */
  loginUser: string;
  host: string;
  ports: DovecotPorts;
  introspectionUrl: Record<DovecotProtocol, string>;
  /** `name:{SSHA256}hash` line for a master user; undefined for none. */
  masterUserLine?: string;
  /** Dovecot's auth_debug; the log then holds tokens. */
  debug: boolean;
}

export interface RenderedFile {
  name: string;
  content: string;
  mode: number;
}

// Paths go into dovecot.conf unquoted and into mail_location, where "%" would be expanded.
const SAFE_PATH = /^\/[A-Za-z0-9._/@+=-]*$/;

export function assertSafePath(path: string, what: string): void {
  if (!SAFE_PATH.test(path)) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `${what} "${path}" has characters Dovecot's config cannot hold`,
      {
        source: DOVECOT_SOURCE,
        hint: "Use a data folder whose absolute path has only letters, digits and . _ - / (no spaces).",
      },
    );
  }
}

/** `{SSHA256}` password scheme (Dovecot: base64 of sha256(password + salt) + salt). */
export function ssha256(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash("sha256").update(password).update(salt).digest();
  return `{SSHA256}${Buffer.concat([digest, salt]).toString("base64")}`;
}

const GREETING: Record<DovecotProtocol, string> = {
  imap: "The Microsoft Exchange IMAP4 service is ready.",
  pop3: "The Microsoft Exchange POP3 service is ready.",
};

function oauth2Args(input: DovecotConfigInput, protocol: DovecotProtocol, shared: boolean): string {
  const lines = [
    "# Written by @m365-mail/emulator on every start.",
    "introspection_mode = post",
    `introspection_url = ${input.introspectionUrl[protocol]}`,
    "username_attribute = username",
    "active_attribute = active",
    "active_value = true",
    `tls_ca_cert_file = ${join(input.dir, "tls", "ca.pem")}`,
    // X-Dovecot-Auth-Service etc.: lets the endpoint see the protocol even behind one URL.
    "send_auth_headers = yes",
    "timeout_msecs = 10000",
  ];
  if (shared) {
    // Shared mailbox: XOAUTH2 user= is the shared mailbox, the token is the delegate's. The first
    // passdb refused the name mismatch; here a constant username_format skips that check and the
    // login is allowed only when the introspection answer lists the mailbox in `mailboxes`
    // (",a@x,b@y,"): allow_nets becomes a network no client comes from otherwise.
    lines.push(
      "username_format = delegated-mailbox",
      "pass_attrs = allow_nets=%{if;,%{oauth2:mailboxes},;*;*,%Lu,*;0.0.0.0/0;192.0.2.255/32}",
    );
  }
  if (input.debug) lines.push("debug = yes");
  return `${lines.join("\n")}\n`;
}

/**
 * The extensions outlook.office365.com:993 advertises (captures from 2025-12 to 2026-10, e.g.
 * github.com/Cocoanetics/SwiftMail/pull/109): no CONDSTORE, QRESYNC, ENABLE, SORT, SPECIAL-USE or
 * ESEARCH, which Dovecot would offer and clients such as imapflow would then use. Dovecot adds the AUTH=
 * mechanisms before login.
 */
export const EXCHANGE_IMAP_CAPABILITY =
  "IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";

/**
 * The OAuth mechanisms outlook.office365.com offers for IMAP and POP3: XOAUTH2 alone, never the
 * standard OAUTHBEARER. Captures: emersion/go-sasl#18 (2020) and neomutt/neomutt#2927 (2021) show
 * `AUTH=PLAIN AUTH=XOAUTH2`, as do those up to early 2026 (SwiftMail#109); later ones `AUTH=XOAUTH2`
 * alone. Clients such as imapflow and curl take OAUTHBEARER whenever it is offered, so offering it
 * would send them down a path Exchange never allows.
 */
export const EXCHANGE_SASL_MECHANISMS = ["XOAUTH2"] as const;

function protocolBlock(input: DovecotConfigInput, protocol: DovecotProtocol): string {
  const capability = protocol === "imap" ? `  imap_capability = ${EXCHANGE_IMAP_CAPABILITY}\n` : "";
  return `protocol ${protocol} {
  login_greeting = ${GREETING[protocol]}
${capability}  mail_max_userip_connections = 1000
  passdb {
    driver = oauth2
    mechanisms = xoauth2
    args = ${join(input.dir, `oauth2-${protocol}.conf.ext`)}
  }
  passdb {
    driver = oauth2
    mechanisms = xoauth2
    args = ${join(input.dir, `oauth2-${protocol}-shared.conf.ext`)}
  }
}
`;
}

function loginService(
  name: string,
  plain: { listener: string; port: number },
  tls: { listener: string; port: number },
  input: DovecotConfigInput,
): string {
  // Dovecot disables an inet_listener with port 0; chroot needs root.
  return `service ${name} {
  inet_listener ${plain.listener} {
    address = ${input.host}
    port = ${plain.port}
  }
  inet_listener ${tls.listener} {
    address = ${input.host}
    port = ${tls.port}
    ssl = yes
  }
${input.asRoot ? "" : "  chroot =\n"}}
`;
}

export function renderDovecotConfig(input: DovecotConfigInput): RenderedFile[] {
  assertSafePath(input.dir, "the Dovecot config folder");
  assertSafePath(input.mailRoot, "the mail folder");
  const protocols = ["imap", "pop3", ...(input.ports.lmtp ? ["lmtp"] : [])];
  // XOAUTH2 only, as Exchange Online: it never offered OAUTHBEARER (see EXCHANGE_SASL_MECHANISMS).
  const mechanisms = ["xoauth2", ...(input.masterUserLine ? ["plain", "login"] : [])];
  const mailboxes = WELL_KNOWN_FOLDERS.filter((f) => f.imapSpecialUse)
    .map((f) => `  mailbox "${f.path}" {\n    special_use = ${f.imapSpecialUse}\n    auto = subscribe\n  }\n`)
    .join("");
  // PLAIN/LOGIN need a non-master passdb; an empty one, since Exchange offers no password login here.
  const master = input.masterUserLine
    ? `auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = ${join(input.dir, "no-users")}
  mechanisms = plain login
}
passdb {
  driver = passwd-file
  args = ${join(input.dir, "master-users")}
  master = yes
  mechanisms = plain login
}
`
    : "";
  const lmtp = input.ports.lmtp
    ? `service lmtp {
  inet_listener lmtp {
    address = ${input.host}
    port = ${input.ports.lmtp}
  }
}
`
    : "";
  const conf = `# Written by @m365-mail/emulator on every start; edits are lost.
base_dir = ${join(input.dir, "run")}
state_dir = ${join(input.dir, "state")}
instance_name = m365-emulator-${createHash("sha256").update(input.dir).digest("hex").slice(0, 8)}
log_path = ${join(input.dir, "dovecot.log")}
info_log_path = ${join(input.dir, "dovecot.log")}
debug_log_path = ${join(input.dir, "dovecot.log")}
protocols = ${protocols.join(" ")}
listen = ${input.host}
default_internal_user = ${input.internalUser}
default_internal_group = ${input.internalGroup}
default_login_user = ${input.loginUser}
first_valid_uid = 1
first_valid_gid = 1

ssl = required
ssl_cert = <${join(input.dir, "tls", "cert.pem")}
ssl_key = <${join(input.dir, "tls", "key.pem")}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes

auth_mechanisms = ${mechanisms.join(" ")}
# Tests hammer AUTH with bad tokens: no penalty delay, and no cache so that revocation applies at once.
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes
auth_debug = ${input.debug ? "yes" : "no"}
${master}
userdb {
  driver = static
  # allow_all_users: LMTP looks users up without a passdb; every address has a mailbox here.
  args = uid=${input.owner.uid} gid=${input.owner.gid} home=${input.mailRoot}/%Lu allow_all_users=yes
}
${protocolBlock(input, "imap")}${protocolBlock(input, "pop3")}
# Folder names as Exchange has them; "/" as separator like Exchange; listescape for "." in names.
mail_location = maildir:${input.mailRoot}/%Lu/Maildir:UTF-8
mail_plugins = $mail_plugins listescape
# The store creates folders behind Dovecot's back: list the directory each time instead of an index.
mailbox_list_index = no
namespace inbox {
  inbox = yes
  separator = /
${mailboxes}}

${loginService("imap-login", { listener: "imap", port: input.ports.imapStartTls }, { listener: "imaps", port: input.ports.imaps }, input)}${loginService("pop3-login", { listener: "pop3", port: input.ports.pop3StartTls }, { listener: "pop3s", port: input.ports.pop3s }, input)}${lmtp}service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
${input.asRoot ? "" : "  chroot =\n"}}
`;
  const files: RenderedFile[] = [
    { name: "dovecot.conf", content: conf, mode: 0o600 },
    { name: "oauth2-imap.conf.ext", content: oauth2Args(input, "imap", false), mode: 0o600 },
    { name: "oauth2-imap-shared.conf.ext", content: oauth2Args(input, "imap", true), mode: 0o600 },
    { name: "oauth2-pop3.conf.ext", content: oauth2Args(input, "pop3", false), mode: 0o600 },
    { name: "oauth2-pop3-shared.conf.ext", content: oauth2Args(input, "pop3", true), mode: 0o600 },
  ];
  if (input.masterUserLine) {
    files.push({ name: "master-users", content: `${input.masterUserLine}\n`, mode: 0o600 });
    files.push({ name: "no-users", content: "", mode: 0o600 });
  }
  return files;
}
