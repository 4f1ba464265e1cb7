import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isM365MailError, M365MailError } from "@m365-mail/core";
import type { OutboxEntry } from "@m365-mail/outbox";
import type { AccountCheck, AccountReport } from "./bridge-doctor.js";
import { describeExpiry } from "./certificate-expiry.js";
import { loadBridgeConfig, readBridgeConfigFile } from "./config.js";
import { type BridgeConfig, metricsOfBridgeConfig } from "./config-schema.js";
import { formatLogLine } from "./console-logger.js";
import { SPOOL_CHANGE_HEADER } from "./metrics.js";
import { hashSecret } from "./secret-hash.js";
import { AREA_NAMES } from "./sign-in-problems.js";
import type { Bridge, BridgeStatus } from "./start-bridge.js";

// The bridge itself, doctor and login are imported by the subcommands that run them: `status`, `spool`
// and `hash-secret` (a monitoring probe every minute) then start without the transports, the outbox,
// msal-node and mailparser.

export interface BridgeCommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Reads all of stdin (hash-secret). */
  readonly stdin: () => Promise<string>;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted to stop a running bridge (SIGTERM, SIGINT): it drains and returns 0. */
  readonly signal?: AbortSignal;
  /** Called with a reload function the caller wires to SIGHUP. */
  readonly onReloadRequest?: (reload: () => void) => void;
  /** Called once the bridge listens (tests, the demo). */
  readonly onStarted?: (bridge: Bridge) => void;
}

export const BRIDGE_HELP = `m365-mail bridge — SMTP, IMAP and POP3 for clients that only know a password

Usage:
  m365-mail bridge --config <file> [--check] [--drain-ms <ms>]
  m365-mail bridge status (--config <file> | --url <http://host:port>) [--json]
  m365-mail bridge spool [retry <id> | discard <id>] (--config <file> | --url <http://host:port>) [--state <state>] [--json]
  m365-mail bridge doctor --config <file> [--account <name>] [--json]
  m365-mail bridge hash-secret [--secret-file <file>]
  m365-mail bridge login --config <file> <account>

  --config <file>     the bridge's config file (JSON; see docs/bridge.md). Default: $M365_BRIDGE_CONFIG
  --check             validate the config file and exit (0 when valid)
  --drain-ms <ms>     on SIGTERM, how long open sessions may take to finish (default 30000)
  status              asks a running bridge (its "metrics" listener) for listeners, sessions, sign-in problems
  spool               lists the running bridge's spooled messages that are not sent yet or need a person
                      (uncertain, failed, queued, sending; --state <state> for one, sent included)
  spool retry <id>    a queued message: attempts it now instead of after its backoff (once what held it
                      is fixed); an uncertain one: sends it again — first make sure its Message-ID is not
                      in the account's Sent Items (it may have reached Microsoft 365)
  spool discard <id>  gives up a queued or uncertain message (failed, DISCARDED): the bridge will not send it
  doctor              signs each mapped account in as the bridge would (a real password grant with the
                      stored password, or the stored device-code sign-in) and tries what the listeners need:
                      SMTP delivery (Graph or SMTP), Sent Items for the spool, IMAP and POP3 sign-in, and
                      each TLS listener's certificate; sends nothing; exit 1 when something needs changing
                      (--account <name> for one account, without the listeners)
  hash-secret         prints the scrypt hash of a mapped login's secret for accounts[].credentials.secretHash;
                      reads the secret from --secret-file or stdin (never the command line)
  login <account>     signs a "signIn": "device-code" account in once: prints a code that a person enters
                      at the page shown, signing in as the account's user (MFA included); the sign-in goes
                      into the config's tokenCache, where the running bridge finds it (no restart)

Signals: SIGHUP reloads the config file without dropping open sessions; SIGTERM/SIGINT drain and stop.
Settings the file leaves out of "m365" come from M365_* variables (m365-mail emulator --write-env).`;

/**
 * `m365-mail bridge …` and `m365-mail-bridge …`: one implementation for the CLI and the package's own
 * bin. Returns the exit code: 0 ok, 1 failed, 2 usage or config error.
 */
export async function runBridgeCommand(argv: readonly string[], io: BridgeCommandIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.stderr(`${(error as Error).message}\n\n${BRIDGE_HELP}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(`${BRIDGE_HELP}\n`);
    return 0;
  }
  const sub = positionals[0];
  try {
    if (sub === "hash-secret") return await hashSecretCommand(values["secret-file"], io);
    if (sub === "status")
      return await statusCommand(
        values.config ?? io.env.M365_BRIDGE_CONFIG,
        values.url,
        values.json === true,
        io,
      );
    if (sub === "spool") {
      const [, action, id] = positionals;
      if (action !== undefined && (!["retry", "discard"].includes(action) || !id || positionals.length > 3)) {
        io.stderr(
          `usage: m365-mail bridge spool [retry <id> | discard <id>] (--config <file> | --url <url>)\n`,
        );
        return 2;
      }
      const base = await metricsBase(values.config ?? io.env.M365_BRIDGE_CONFIG, values.url, "spool");
      return action
        ? await resolveCommand(base, action as "retry" | "discard", id!, values.json === true, io)
        : await spoolListCommand(base, values.state, values.json === true, io);
    }
    if (sub === "doctor")
      return await doctorCommand(
        values.config ?? io.env.M365_BRIDGE_CONFIG,
        values.account,
        values.json === true,
        io,
      );
    if (sub === "login")
      return await loginCommand(values.config ?? io.env.M365_BRIDGE_CONFIG, positionals[1], io);
    if (sub !== undefined) {
      io.stderr(`unknown bridge command "${sub}"\n\n${BRIDGE_HELP}\n`);
      return 2;
    }
    const configPath = values.config ?? io.env.M365_BRIDGE_CONFIG;
    if (!configPath) {
      io.stderr(`m365-mail bridge needs --config <file> (or M365_BRIDGE_CONFIG)\n\n${BRIDGE_HELP}\n`);
      return 2;
    }
    const config = await loadBridgeConfig(configPath, io.env);
    if (values.check) {
      io.stdout(
        `${configPath}: valid (${config.accounts.length} account(s), ${config.listeners.length} listener(s))\n`,
      );
      return 0;
    }
    const drainMs = values["drain-ms"] !== undefined ? Number(values["drain-ms"]) : 30_000;
    if (!Number.isInteger(drainMs) || drainMs < 0) {
      io.stderr("--drain-ms must be a whole number of milliseconds\n");
      return 2;
    }
    return await serve(configPath, config, drainMs, io);
  } catch (error) {
    if (isM365MailError(error)) {
      // The message ends with the hint ("… — <what to change>").
      io.stderr(`${error.message}\n`);
      return error.code === "CONFIG_INVALID" ? 2 : 1;
    }
    io.stderr(`${String(error)}\n`);
    return 1;
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      check: { type: "boolean" },
      "drain-ms": { type: "string" },
      url: { type: "string" },
      json: { type: "boolean" },
      state: { type: "string" },
      account: { type: "string" },
      "secret-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

async function serve(
  configPath: string,
  config: BridgeConfig,
  drainMs: number,
  io: BridgeCommandIo,
): Promise<number> {
  const { startBridge } = await import("./start-bridge.js");
  const bridge = await startBridge(config, { env: io.env, configPath });
  // With "logFormat": "json" these lines are JSON objects too: a collector reads every line of stderr.
  const say = (level: "info" | "error", text: string) =>
    io.stderr(`${config.logFormat === "json" ? formatLogLine("json", level, text) : text}\n`);
  for (const a of bridge.addresses) say("info", `m365-mail bridge: ${a.protocol} on ${a.host}:${a.port}`);
  io.onStarted?.(bridge);
  let reloading: Promise<void> = Promise.resolve();
  io.onReloadRequest?.(() => {
    reloading = reloading.then(async () => {
      try {
        await bridge.reload(await loadBridgeConfig(configPath, io.env));
        say("info", `m365-mail bridge: reloaded ${configPath}`);
      } catch (error) {
        // A broken file must not take the running bridge down: keep the old settings.
        say(
          "error",
          `m365-mail bridge: reload failed, keeping the running settings: ${isM365MailError(error) ? error.message : String(error)}`,
        );
      }
    });
  });
  await new Promise<void>((resolve) => {
    if (!io.signal) return;
    if (io.signal.aborted) return resolve();
    io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  say("info", `m365-mail bridge: stopping; open sessions get up to ${drainMs} ms`);
  await reloading;
  await bridge.close({ drainMs });
  return 0;
}

async function hashSecretCommand(file: string | undefined, io: BridgeCommandIo): Promise<number> {
  const text = file ? await readFile(file, "utf8") : await io.stdin();
  const secret = text.replace(/\r?\n$/, "");
  if (secret.length < 8) {
    throw new M365MailError("CONFIG_INVALID", "the secret is shorter than 8 characters", {
      source: "bridge",
      hint: "Use a long random secret for the device, e.g. openssl rand -base64 18.",
    });
  }
  io.stdout(`${await hashSecret(secret)}\n`);
  return 0;
}

async function loginCommand(
  configPath: string | undefined,
  accountName: string | undefined,
  io: BridgeCommandIo,
): Promise<number> {
  if (!configPath || !accountName) {
    io.stderr(`m365-mail bridge login needs --config <file> and an account name\n\n${BRIDGE_HELP}\n`);
    return 2;
  }
  const config = await loadBridgeConfig(configPath, io.env);
  const { foreignTokenCacheOwner } = await import("./token-cache.js");
  const owner = await foreignTokenCacheOwner(config);
  if (owner) {
    const who = owner.name ?? `'#${owner.uid}'`;
    throw new M365MailError(
      "CONFIG_INVALID",
      `the token cache ${owner.path} belongs to ${owner.name ?? `uid ${owner.uid}`}, not to the user running this command: the bridge could not read a sign-in stored now`,
      {
        source: "bridge",
        hint: `Run it as that user: sudo -u ${who} m365-mail bridge login --config ${configPath} ${accountName}`,
      },
    );
  }
  const credentials = config.accounts.find((a) => a.name === accountName)?.credentials;
  // signInAccount refuses any other kind of account before a code is shown.
  const username = credentials?.mode === "mapped" ? credentials.username : accountName;
  const { signInAccount } = await import("./device-code-login.js");
  const result = await signInAccount(config, accountName, {
    env: io.env,
    ...(io.signal ? { signal: io.signal } : {}),
    onDeviceCode: (info) => {
      io.stderr(`${info.message}\n`);
      io.stderr(
        `Sign in as ${username}. The code expires at ${info.expiresAt.toISOString()}; Ctrl-C stops waiting.\n`,
      );
    },
  });
  io.stdout(`Signed in: account ${result.account} acts as ${result.username}.\n`);
  for (const r of result.resources) {
    io.stdout(
      r.error
        ? `  ${r.resource}: refused — ${r.error.message}${r.error.hint ? ` (${r.error.hint})` : ""}\n`
        : `  ${r.resource}: token until ${r.expiresAt!.toISOString()}\n`,
    );
  }
  const where =
    config.tokenCache.type === "redis"
      ? "the Redis token cache"
      : config.tokenCache.type === "file"
        ? config.tokenCache.path
        : "memory";
  io.stdout(`The sign-in is stored in ${where}; the bridge uses it from the account's next login.\n`);
  return result.resources.some((r) => r.error) ? 1 : 0;
}

/** The running bridge's metrics listener: `--url`, or the `metrics` of the config file. */
async function metricsBase(configPath: string | undefined, url: string | undefined, command: string) {
  if (url) return url.replace(/\/+$/, "");
  if (!configPath) {
    throw new M365MailError(
      "CONFIG_INVALID",
      `m365-mail bridge ${command} needs --url or --config (whose metrics listener it asks)`,
      {
        source: "bridge",
        hint: "Pass --config <file> (or set M365_BRIDGE_CONFIG), or --url http://127.0.0.1:<port>.",
      },
    );
  }
  // Only the metrics address is needed: not the M365_* variables the running bridge was given.
  const metrics = metricsOfBridgeConfig(await readBridgeConfigFile(configPath));
  if (!metrics) {
    throw new M365MailError("CONFIG_INVALID", `${configPath} has no "metrics" listener to ask`, {
      source: "bridge",
      hint: 'Add "metrics": { "port": 9465 } to the config (loopback only by default) and restart the bridge.',
    });
  }
  return `http://${metrics.host.includes(":") ? `[${metrics.host}]` : metrics.host}:${metrics.port}`;
}

/** One request to the running bridge; its JSON answer, or a typed error with what to do. */
async function askBridge<T>(base: string, path: string, method = "GET"): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      ...(method === "POST" ? { headers: { [SPOOL_CHANGE_HEADER]: "1" } } : {}),
      signal: AbortSignal.timeout(5000),
    });
  } catch (error) {
    throw new M365MailError("CONNECTION_FAILED", `no bridge answered at ${base}${path}`, {
      source: "bridge",
      cause: error,
      hint: "Is the bridge running with this config's metrics listener? Start it with m365-mail bridge --config <file>.",
    });
  }
  const body = (await res.json().catch(() => undefined)) as
    | (T & { error?: { code: string; message: string } })
    | undefined;
  if (!res.ok || body === undefined) {
    const code = body?.error?.code;
    throw new M365MailError(
      code === "NOT_FOUND" ||
        code === "MESSAGE_INVALID" ||
        code === "ACCESS_DENIED" ||
        code === "CONFIG_INVALID"
        ? code
        : "SERVER_ERROR",
      body?.error?.message ?? `the bridge answered HTTP ${res.status} to ${path}`,
      { source: "bridge" },
    );
  }
  return body;
}

async function statusCommand(
  configPath: string | undefined,
  url: string | undefined,
  json: boolean,
  io: BridgeCommandIo,
): Promise<number> {
  const status = await askBridge<BridgeStatus>(await metricsBase(configPath, url, "status"), "/status");
  if (json) {
    io.stdout(`${JSON.stringify(status, null, 2)}\n`);
  } else {
    io.stdout(formatStatus(status));
  }
  return status.signInProblems.length > 0 ? 1 : 0;
}

async function doctorCommand(
  configPath: string | undefined,
  account: string | undefined,
  json: boolean,
  io: BridgeCommandIo,
): Promise<number> {
  if (!configPath) {
    io.stderr(`m365-mail bridge doctor needs --config <file> (or M365_BRIDGE_CONFIG)\n`);
    return 2;
  }
  const config = await loadBridgeConfig(configPath, io.env);
  const { checkBridgeAccounts } = await import("./bridge-doctor.js");
  const report = await checkBridgeAccounts(config, {
    env: io.env,
    configPath,
    ...(account ? { account } : {}),
    // A terminal sees each account as it is checked.
    ...(json ? {} : { onAccount: (a: AccountReport) => io.stdout(formatAccountReport(a)) }),
  });
  if (json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else {
    if (report.listeners.length > 0) io.stdout(formatListenerChecks(report.listeners));
    const failing = report.accounts.filter((a) => !a.ok).map((a) => a.account);
    const badListeners = report.listeners.filter((l) => l.status === "fail").length;
    io.stdout(
      failing.length === 0
        ? `\nEvery account checked is ready (${report.accounts.length}).\n`
        : `\n${failing.length} of ${report.accounts.length} account(s) need a change: ${failing.join(", ")} (see → above).\n`,
    );
    if (badListeners > 0) io.stdout(`${badListeners} listener certificate(s) need a change (see → above).\n`);
  }
  return report.ok ? 0 : 1;
}

const MARK = { pass: "✓", fail: "✗", skip: "–" } as const;

function formatAccountReport(report: AccountReport): string {
  const who =
    report.mode === "passthrough"
      ? "passthrough"
      : `mapped, as ${report.username}${report.mailbox ? ` for ${report.mailbox}` : ""}`;
  const lines = [`${report.account} (${who})`];
  for (const check of report.checks) {
    lines.push(`  ${MARK[check.status]} ${check.name.padEnd(14)} ${check.detail}`);
    if (check.error) {
      lines.push(`      ${check.error.code}: ${check.error.message}`);
      if (check.error.hint) lines.push(`      → ${check.error.hint}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function formatListenerChecks(checks: readonly (AccountCheck & { listener: string })[]): string {
  const lines = ["listeners"];
  for (const check of checks) {
    lines.push(`  ${MARK[check.status]} ${check.listener}  certificate ${check.detail}`);
    if (check.error) {
      lines.push(`      ${check.error.code}: ${check.error.message}`);
      if (check.error.hint) lines.push(`      → ${check.error.hint}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

async function spoolListCommand(
  base: string,
  state: string | undefined,
  json: boolean,
  io: BridgeCommandIo,
): Promise<number> {
  const query = state ? `?state=${encodeURIComponent(state)}` : "";
  const { messages } = await askBridge<{ messages: OutboxEntry[] }>(base, `/spool${query}`);
  if (json) io.stdout(`${JSON.stringify(messages, null, 2)}\n`);
  else io.stdout(formatSpool(messages, state));
  return 0;
}

async function resolveCommand(
  base: string,
  action: "retry" | "discard",
  id: string,
  json: boolean,
  io: BridgeCommandIo,
): Promise<number> {
  const entry = await askBridge<OutboxEntry>(base, `/spool/${encodeURIComponent(id)}/${action}`, "POST");
  if (json) io.stdout(`${JSON.stringify(entry, null, 2)}\n`);
  else
    io.stdout(
      action === "retry"
        ? `${id}: queued to be sent now (${entry.messageId})\n`
        : `${id}: discarded; the bridge will not send it (${entry.messageId})\n`,
    );
  return 0;
}

/** One block per message: what an operator needs to decide (Message-ID to look for, the error, the hint). */
export function formatSpool(messages: readonly OutboxEntry[], state?: string): string {
  if (messages.length === 0)
    return state ? `no ${state} messages\n` : "the spool is empty: every message was sent ✓\n";
  const lines: string[] = [];
  for (const m of messages) {
    lines.push(
      `${m.id}  ${m.state}  ${m.owner ?? "?"}  ${JSON.stringify(m.subject ?? "")}`,
      `  Message-ID ${m.messageId}, via ${m.via}, ${m.attempts} attempt(s), accepted ${m.createdAt}`,
    );
    if (m.nextAttemptAt && m.state === "queued") lines.push(`  next attempt ${m.nextAttemptAt}`);
    if (m.error)
      lines.push(`  ${m.error.code}: ${m.error.message}`, ...(m.error.hint ? [`  ${m.error.hint}`] : []));
    if (m.state === "queued" && m.error)
      lines.push(
        `  once the cause is fixed: m365-mail bridge spool retry ${m.id}    (now, not at the next attempt)   or   m365-mail bridge spool discard ${m.id}    (never send it)`,
      );
    if (m.state === "uncertain")
      lines.push(
        `  may have reached Microsoft 365: look for its Message-ID in ${m.owner ?? "the account"}'s Sent Items, then`,
        `  m365-mail bridge spool retry ${m.id}    (not there)   or   m365-mail bridge spool discard ${m.id}    (there)`,
      );
  }
  return `${lines.join("\n")}\n`;
}

/** `scanner (support@contoso.com, SMTP)`, `@contoso.com (alice@contoso.com)`: whose problem, and where. */
function describeProblem(p: BridgeStatus["signInProblems"][number]): string {
  const details = [
    // A bridge older than this CLI sends neither.
    ...(p.user && p.user.toLowerCase() !== p.account.toLowerCase() ? [p.user] : []),
    ...(p.area && p.area !== "sign-in" ? [AREA_NAMES[p.area]] : []),
  ];
  return details.length ? `${p.account} (${details.join(", ")})` : p.account;
}

export function formatStatus(status: BridgeStatus): string {
  const lines = [`bridge running since ${status.startedAt}`, "", "listeners:"];
  for (const l of status.listeners) {
    lines.push(
      `  ${l.protocol.padEnd(5)} ${l.security.padEnd(8)} ${l.host}:${l.port}  ${l.openSessions} open session(s)`,
    );
    if (l.certificate)
      lines.push(`        certificate ${l.certificate.file}, ${describeExpiry(l.certificate.expiresAt)}`);
  }
  lines.push("", "accounts:");
  for (const a of status.accounts)
    lines.push(
      `  ${a.name}  (${a.mode}, delivery ${a.delivery}, ${a.answer}${a.sentCopies === "drop" ? ", Sent Items uploads of its sent mail left out" : ""})`,
    );
  lines.push("");
  if (status.signInProblems.length === 0) lines.push("sign-in problems: none ✓");
  else {
    lines.push("sign-in problems (a person must act):");
    for (const p of status.signInProblems)
      lines.push(
        `  ✗ ${describeProblem(p)}: ${p.code}${p.serverCode ? ` (${p.serverCode})` : ""} since ${p.since}`,
        `    ${p.hint ?? p.message}`,
      );
  }
  lines.push(
    `lockout guard: ${status.lockout.blockedClients} client(s) refused, ${status.lockout.cappedAccounts} account(s) capped`,
  );
  // A status from a bridge older than this CLI has no `throttled`.
  const throttled = status.throttled ?? [];
  if (throttled.length === 0) lines.push("Microsoft 365 throttling: none");
  else {
    lines.push("Microsoft 365 throttling (new logins wait, open sessions go on):");
    for (const t of throttled) lines.push(`  ${t.protocol} ${t.mailbox} until ${t.until}`);
  }
  if (status.spool) {
    const { queued, sending, uncertain, failed, oldestPendingSince } = status.spool;
    lines.push(
      `spool: ${queued} queued, ${sending} sending, ${uncertain} uncertain${uncertain ? " (a person decides: m365-mail bridge spool)" : ""}, ${failed} failed${failed ? " (given up: m365-mail bridge spool --state failed)" : ""}`,
    );
    if (oldestPendingSince)
      lines.push(`  the oldest message not sent yet was accepted at ${oldestPendingSince}`);
  }
  return `${lines.join("\n")}\n`;
}
