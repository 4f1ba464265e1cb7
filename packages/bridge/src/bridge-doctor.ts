import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { memoryTokenCache, type TokenCache } from "@m365-mail/auth-ropc";
import { isM365MailError, type Logger, M365MailError, type VerifyCheck } from "@m365-mail/core";
import { graphTransport } from "@m365-mail/transport-graph";
import { smtpTransport } from "@m365-mail/transport-smtp";
import { describeExpiry } from "./certificate-expiry.js";
import type { AccountConfig, BridgeConfig, ListenerConfig, MappedCredentials } from "./config-schema.js";
import { type Credentials, createCredentials } from "./credentials.js";
import type { BridgeProtocol, SignedIn, UpstreamEndpoint } from "./front-door.js";
import { openImapUpstream, signInImapUpstream } from "./imap/imap-upstream.js";
import { createLockoutGuard } from "./lockout-guard.js";
import { createBridgeMetrics } from "./metrics.js";
import { openPop3Upstream, signInPop3Upstream } from "./pop3/pop3-upstream.js";
import type { UpstreamConnection } from "./relay/upstream-connection.js";
import { createSignInProblems } from "./sign-in-problems.js";
import { GRAPH_NOT_CONSENTED } from "./smtp/deliver.js";
import { generatedPaths, readConfiguredPair } from "./tls-material.js";
import { openTokenCache, readCa } from "./token-cache.js";

// `m365-mail bridge doctor`: before a device finds out, check that every account the bridge signs in
// for itself (mapped) can do what the config's listeners will ask of it, through the bridge's own code.

export type AccountCheckStatus = "pass" | "fail" | "skip";

export interface AccountCheck {
  /** "sign-in", "SMTP delivery", "Sent Items", "IMAP", "POP3". */
  readonly name: string;
  readonly status: AccountCheckStatus;
  /** What was done, and what came back. */
  readonly detail: string;
  readonly error?: { code: string; message: string; hint?: string; serverCode?: string };
}

export interface AccountReport {
  readonly account: string;
  readonly mode: "passthrough" | "mapped";
  /** The Microsoft 365 user the bridge signs in as (mapped accounts). */
  readonly username?: string;
  /** The mailbox it acts on, when that is another (a shared mailbox). */
  readonly mailbox?: string;
  readonly ok: boolean;
  readonly checks: readonly AccountCheck[];
}

/** A TLS listener's certificate check: `listener` is `smtp 0.0.0.0:587 (starttls)`. */
export interface ListenerCheck extends AccountCheck {
  readonly listener: string;
}

export interface BridgeDoctorReport {
  /** False when any check failed (skipped ones do not count). */
  readonly ok: boolean;
  readonly accounts: readonly AccountReport[];
  /** The certificate of each TLS listener (none with `account`). */
  readonly listeners: readonly ListenerCheck[];
}

export interface BridgeDoctorOptions {
  /** Check only this account. */
  account?: string;
  env?: NodeJS.ProcessEnv;
  /** The config file's path, named in hints (`m365-mail bridge login --config …`). */
  configPath?: string;
  /** Per upstream connection (IMAP, POP3). @default 15000 */
  timeoutMs?: number;
  /** Called as each account's report is complete (progress on a terminal). */
  onAccount?: (report: AccountReport) => void;
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

const errorFields = (error: unknown): NonNullable<AccountCheck["error"]> => {
  const e = isM365MailError(error)
    ? error
    : new M365MailError("SERVER_ERROR", `unexpected failure: ${(error as Error)?.message ?? error}`, {
        source: "bridge",
      });
  // The message ends with its hint (" — hint"); the report keeps them apart.
  const message = e.hint ? e.message.replace(` — ${e.hint}`, "") : e.message;
  return {
    code: e.code,
    message: message.replace(/^\[m365-mail\] (?:\[[^\]]+\] )?/, ""),
    ...(e.hint ? { hint: e.hint } : {}),
    ...(e.serverCode ? { serverCode: e.serverCode } : {}),
  };
};
const pass = (name: string, detail: string): AccountCheck => ({ name, status: "pass", detail });
const fail = (name: string, detail: string, error: unknown): AccountCheck => ({
  name,
  status: "fail",
  detail,
  error: errorFields(error),
});

/**
 * Signs each mapped account in as the bridge would — the stored password (a real password grant, never a
 * cached token, so a password changed in Entra but not in the file shows up) or the stored device-code
 * sign-in (from the configured token cache) — and then tries what the listeners need of it: the SMTP
 * delivery route (Graph: `/me` and Mail.Send; SMTP: AUTH XOAUTH2 and MAIL FROM), Sent Items when the
 * spool checks them (Mail.Read), and an IMAP or POP3 sign-in upstream. Nothing is sent. A passthrough
 * account is skipped: its password comes from each device. One password grant per account at most, so
 * a wrong stored password costs one failure towards Entra's lockout, not ten.
 */
export async function checkBridgeAccounts(
  config: BridgeConfig,
  options: BridgeDoctorOptions = {},
): Promise<BridgeDoctorReport> {
  const env = options.env ?? process.env;
  const accounts = options.account
    ? config.accounts.filter((a) => a.name === options.account)
    : config.accounts;
  if (accounts.length === 0) {
    throw new M365MailError("CONFIG_INVALID", `the bridge config has no account named ${options.account}`, {
      source: "bridge",
      hint: `Accounts in the config: ${config.accounts.map((a) => a.name).join(", ")}.`,
    });
  }
  const ca = await readCa(config);
  const protocols = new Set(config.listeners.map((l) => l.protocol));
  const usesDeviceCode = accounts.some(
    (a) => a.credentials.mode === "mapped" && a.credentials.signIn === "device-code",
  );
  // Device-code sign-ins live only in the configured cache; stored passwords are tried for real.
  const configured = usesDeviceCode ? await openTokenCache(config, env, quiet) : undefined;
  const metrics = createBridgeMetrics();
  const credentialsWith = (cache: TokenCache, pepper?: Uint8Array): Credentials =>
    createCredentials({
      config,
      cache,
      ...(pepper ? { cachePepper: pepper } : {}),
      ...(ca ? { ca } : {}),
      guard: createLockoutGuard({ settings: config.lockout, logger: quiet }),
      // No webhook: a check is not an incident.
      problems: createSignInProblems({ logger: quiet, metrics }),
      metrics,
      logger: quiet,
      env,
      ...(options.configPath ? { configPath: options.configPath } : {}),
    });
  const withStoredSignIn = configured ? credentialsWith(configured.cache, configured.pepper) : undefined;
  const reports: AccountReport[] = [];
  try {
    for (const account of accounts) {
      const c = account.credentials;
      let report: AccountReport;
      if (c.mode === "passthrough") report = skipped(account);
      else {
        // A cache of its own per stored password: another account of the same user must not lend it tokens.
        const credentials =
          c.signIn === "device-code" ? withStoredSignIn! : credentialsWith(memoryTokenCache());
        try {
          report = await checkMapped(account, c, credentials, {
            config,
            protocols,
            timeoutMs: options.timeoutMs ?? 15_000,
            ...(ca ? { ca } : {}),
          });
        } finally {
          if (credentials !== withStoredSignIn) await credentials.dispose();
        }
      }
      reports.push(report);
      options.onAccount?.(report);
    }
  } finally {
    await withStoredSignIn?.dispose();
    await configured?.closeCache();
  }
  const listeners = options.account
    ? []
    : await Promise.all(
        config.listeners.filter((l) => l.security !== "plain").map((l) => checkCertificate(l, config)),
      );
  return {
    ok: reports.every((r) => r.ok) && listeners.every((l) => l.status !== "fail"),
    accounts: reports,
    listeners,
  };
}

/**
 * The certificate a TLS listener will present, read as the bridge reads it: configured files must be
 * readable, hold a key that belongs to the certificate, and not have ended. Nothing is written: a generated
 * certificate that does not exist yet is made by the bridge's first start, not here.
 */
async function checkCertificate(l: ListenerConfig, config: BridgeConfig): Promise<ListenerCheck> {
  const listener = `${l.protocol} ${l.host}:${l.port} (${l.security})`;
  if (l.tls?.certFile && l.tls.keyFile) {
    try {
      const material = await readConfiguredPair(l.tls.certFile, l.tls.keyFile);
      if (material.expiresAt.getTime() <= Date.now()) {
        const ended = new M365MailError(
          "CONFIG_INVALID",
          `the certificate in ${material.certPath} ended on ${material.expiresAt.toISOString().slice(0, 10)}`,
          {
            source: "bridge",
            hint: "Renew it, then reload the bridge (SIGHUP): clients that check certificates refuse the bridge until then.",
          },
        );
        return { listener, ...fail("certificate", material.certPath, ended) };
      }
      return {
        listener,
        ...pass("certificate", `${material.certPath}, ${describeExpiry(material.expiresAt.toISOString())}`),
      };
    } catch (error) {
      return { listener, ...fail("certificate", l.tls.certFile, error) };
    }
  }
  const { certPath } = generatedPaths(config.dataDir);
  try {
    const validTo = new X509Certificate(await readFile(certPath, "utf8")).validTo;
    return {
      listener,
      ...pass(
        "certificate",
        `generated ${certPath}, ${describeExpiry(new Date(validTo).toISOString())} (made anew 7 days before its end; clients must then trust the new file)`,
      ),
    };
  } catch {
    return {
      listener,
      ...pass(
        "certificate",
        `generated on the bridge's first start as ${certPath}; clients that check certificates must trust that file`,
      ),
    };
  }
}

function skipped(account: AccountConfig): AccountReport {
  const c = account.credentials;
  const who =
    c.mode === "passthrough" && c.domain
      ? `each user of ${c.domain} logs in with their own Microsoft 365 password`
      : `the device logs in with ${c.mode === "passthrough" && c.username ? `${c.username}'s` : "the user's"} Microsoft 365 password`;
  return {
    account: account.name,
    mode: "passthrough",
    ok: true,
    checks: [
      {
        name: "sign-in",
        status: "skip",
        detail: `not checked: ${who}, which the bridge does not store; check a user with m365-mail doctor (M365_USERNAME, M365_PASSWORD)`,
      },
    ],
  };
}

interface CheckContext {
  config: BridgeConfig;
  protocols: ReadonlySet<BridgeProtocol>;
  timeoutMs: number;
  ca?: string;
}

async function checkMapped(
  account: AccountConfig,
  c: MappedCredentials,
  credentials: Credentials,
  ctx: CheckContext,
): Promise<AccountReport> {
  const checks: AccountCheck[] = [];
  const mailbox = account.mailbox ?? c.username;
  const done = (): AccountReport => ({
    account: account.name,
    mode: "mapped",
    username: c.username,
    ...(mailbox.toLowerCase() !== c.username.toLowerCase() ? { mailbox } : {}),
    ok: checks.every((check) => check.status !== "fail"),
    checks,
  });
  const how =
    c.signIn === "device-code"
      ? `the stored device-code sign-in of ${c.username} (refresh grant)`
      : `password grant for ${c.username} with the password in ${c.passwordFile ? `the file ${c.passwordFile}` : `the variable ${c.passwordEnv}`}`;
  const first: BridgeProtocol = ctx.protocols.has("smtp")
    ? "smtp"
    : ctx.protocols.has("imap")
      ? "imap"
      : "pop3";
  let signedIn: SignedIn;
  try {
    signedIn = await credentials.signInWithoutPassword(account.name, first);
    checks.push(pass("sign-in", how));
  } catch (error) {
    checks.push(fail("sign-in", how, error));
    return done();
  }
  if (ctx.protocols.has("smtp")) checks.push(...(await checkSmtpDelivery(account, signedIn, ctx)));
  for (const protocol of ["imap", "pop3"] as const) {
    if (ctx.protocols.has(protocol)) checks.push(await checkRelay(protocol, signedIn, ctx));
  }
  return done();
}

/** The delivery route (and, for the spool, Sent Items), with the transports delivery uses. */
async function checkSmtpDelivery(
  account: AccountConfig,
  signedIn: SignedIn,
  ctx: CheckContext,
): Promise<AccountCheck[]> {
  const m365 = ctx.config.m365;
  const out: AccountCheck[] = [];
  const needGraph = account.delivery !== "smtp" || account.answer === "spool";
  let graph: readonly VerifyCheck[] | undefined;
  if (needGraph) {
    const transport = graphTransport({
      auth: signedIn.auth,
      mailbox: signedIn.mailbox,
      ...(m365.graphOrigin ? { baseUrl: m365.graphOrigin } : {}),
      ...(ctx.ca ? { ca: ctx.ca } : {}),
    });
    try {
      graph = (await transport.verify()).checks;
    } finally {
      await transport.close();
    }
  }
  const shared = signedIn.mailbox.toLowerCase() !== signedIn.auth.username.toLowerCase();
  /** The first failing Graph check of those named, or the details of all of them. */
  const graphResult = (names: string[]): { ok: true; detail: string } | { ok: false; check: VerifyCheck } => {
    const picked = graph!.filter((check) => names.includes(check.name));
    const bad =
      graph!.find((check) => check.name === "sign-in" && !check.ok) ?? picked.find((check) => !check.ok);
    if (bad) return { ok: false, check: bad };
    return { ok: true, detail: picked.map((check) => `${check.name}: ${check.detail}`).join("; ") };
  };

  const sendName = shared ? "Mail.Send.Shared" : "Mail.Send";
  const viaGraph = account.delivery === "smtp" ? undefined : graphResult(["User.Read", sendName]);
  const label = "SMTP delivery";
  if (viaGraph?.ok) out.push(pass(label, `Graph sendMail as ${signedIn.mailbox}: ${viaGraph.detail}`));
  else if (
    viaGraph &&
    (account.delivery === "graph" || !GRAPH_NOT_CONSENTED.has(viaGraph.check.error?.code ?? ""))
  ) {
    out.push(
      fail(label, `Graph sendMail as ${signedIn.mailbox}: ${viaGraph.check.detail}`, viaGraph.check.error),
    );
  } else {
    // delivery "smtp", or "auto" where Graph is not allowed: Exchange's SMTP with XOAUTH2.
    const transport = smtpTransport({
      auth: signedIn.auth,
      mailbox: signedIn.mailbox,
      host: m365.smtp.host,
      port: m365.smtp.port,
      ...(ctx.ca ? { ca: ctx.ca } : {}),
    });
    try {
      const report = await transport.verify();
      const bad = report.checks.find((check) => !check.ok);
      const graphNote =
        viaGraph && !viaGraph.ok ? ` (Graph: ${viaGraph.check.detail}, so "auto" uses SMTP)` : "";
      const detail = `SMTP${graphNote}: ${report.checks.map((check) => check.detail).join("; ")}`;
      out.push(bad ? fail(label, detail, bad.error) : pass(label, detail));
    } finally {
      await transport.close();
    }
  }
  if (account.answer === "spool") {
    const readName = shared ? "Mail.Read.Shared" : "Mail.Read";
    const sentItems = graphResult([readName]);
    const why = "the spool looks there before it sends a message again";
    out.push(
      sentItems.ok
        ? pass("Sent Items", `${sentItems.detail} (${why})`)
        : fail("Sent Items", `${sentItems.check.detail} (${why})`, sentItems.check.error),
    );
  }
  return out;
}

/** An upstream sign-in exactly as the relay makes it, then LOGOUT/QUIT. */
async function checkRelay(
  protocol: "imap" | "pop3",
  signedIn: SignedIn,
  ctx: CheckContext,
): Promise<AccountCheck> {
  const { host, port } = ctx.config.m365[protocol];
  const endpoint: UpstreamEndpoint = { host, port, security: "tls", ...(ctx.ca ? { ca: ctx.ca } : {}) };
  const name = protocol === "imap" ? "IMAP" : "POP3";
  const detail = `${protocol === "imap" ? "AUTHENTICATE XOAUTH2" : "AUTH XOAUTH2"} user=${signedIn.mailbox} at ${host}:${port}`;
  let conn: UpstreamConnection | undefined;
  try {
    if (protocol === "imap") {
      conn = await openImapUpstream(endpoint, ctx.timeoutMs);
      await signInImapUpstream(conn, signedIn);
      conn.write("B9 LOGOUT\r\n");
    } else {
      conn = await openPop3Upstream(endpoint, ctx.timeoutMs);
      await signInPop3Upstream(conn, signedIn);
      conn.write("QUIT\r\n");
    }
    return pass(name, `${detail}: signed in`);
  } catch (error) {
    return fail(name, detail, error);
  } finally {
    conn?.close();
  }
}
