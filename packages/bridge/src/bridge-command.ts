import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isM365MailError, M365MailError } from "@m365-mail/core";
import { loadBridgeConfig, readBridgeConfigFile } from "./config.js";
import { type BridgeConfig, metricsOfBridgeConfig } from "./config-schema.js";
import { signInAccount } from "./device-code-login.js";
import { hashSecret } from "./secret-hash.js";
import { type Bridge, type BridgeStatus, startBridge } from "./start-bridge.js";
import { foreignTokenCacheOwner } from "./token-cache.js";

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
  m365-mail bridge hash-secret [--secret-file <file>]
  m365-mail bridge login --config <file> <account>

  --config <file>     the bridge's config file (JSON; see docs/bridge.md). Default: $M365_BRIDGE_CONFIG
  --check             validate the config file and exit (0 when valid)
  --drain-ms <ms>     on SIGTERM, how long open sessions may take to finish (default 30000)
  status              asks a running bridge (its "metrics" listener) for listeners, sessions, sign-in problems
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
  const bridge = await startBridge(config, { env: io.env, configPath });
  for (const a of bridge.addresses) io.stderr(`m365-mail bridge: ${a.protocol} on ${a.host}:${a.port}\n`);
  io.onStarted?.(bridge);
  let reloading: Promise<void> = Promise.resolve();
  io.onReloadRequest?.(() => {
    reloading = reloading.then(async () => {
      try {
        await bridge.reload(await loadBridgeConfig(configPath, io.env));
        io.stderr(`m365-mail bridge: reloaded ${configPath}\n`);
      } catch (error) {
        // A broken file must not take the running bridge down: keep the old settings.
        io.stderr(
          `m365-mail bridge: reload failed, keeping the running settings: ${isM365MailError(error) ? error.message : String(error)}\n`,
        );
      }
    });
  });
  await new Promise<void>((resolve) => {
    if (!io.signal) return;
    if (io.signal.aborted) return resolve();
    io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  io.stderr(`m365-mail bridge: stopping; open sessions get up to ${drainMs} ms\n`);
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

async function statusCommand(
  configPath: string | undefined,
  url: string | undefined,
  json: boolean,
  io: BridgeCommandIo,
): Promise<number> {
  let base = url;
  if (!base) {
    if (!configPath) {
      io.stderr("m365-mail bridge status needs --url or --config (whose metrics listener it asks)\n");
      return 2;
    }
    // Only the metrics address is needed: not the M365_* variables the running bridge was given.
    const metrics = metricsOfBridgeConfig(await readBridgeConfigFile(configPath));
    if (!metrics) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `${configPath} has no "metrics" listener to ask for the status`,
        {
          source: "bridge",
          hint: 'Add "metrics": { "port": 9465 } to the config (loopback only by default) and restart the bridge.',
        },
      );
    }
    base = `http://${metrics.host.includes(":") ? `[${metrics.host}]` : metrics.host}:${metrics.port}`;
  }
  let status: BridgeStatus;
  try {
    const res = await fetch(`${base.replace(/\/+$/, "")}/status`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    status = (await res.json()) as BridgeStatus;
  } catch (error) {
    throw new M365MailError("CONNECTION_FAILED", `no bridge answered at ${base}/status`, {
      source: "bridge",
      cause: error,
      hint: "Is the bridge running with this config's metrics listener? Start it with m365-mail bridge --config <file>.",
    });
  }
  if (json) {
    io.stdout(`${JSON.stringify(status, null, 2)}\n`);
  } else {
    io.stdout(formatStatus(status));
  }
  return status.signInProblems.length > 0 ? 1 : 0;
}

export function formatStatus(status: BridgeStatus): string {
  const lines = [`bridge running since ${status.startedAt}`, "", "listeners:"];
  for (const l of status.listeners)
    lines.push(
      `  ${l.protocol.padEnd(5)} ${l.security.padEnd(8)} ${l.host}:${l.port}  ${l.openSessions} open session(s)`,
    );
  lines.push("", "accounts:");
  for (const a of status.accounts)
    lines.push(`  ${a.name}  (${a.mode}, delivery ${a.delivery}, ${a.answer})`);
  lines.push("");
  if (status.signInProblems.length === 0) lines.push("sign-in problems: none ✓");
  else {
    lines.push("sign-in problems (a person must act):");
    for (const p of status.signInProblems)
      lines.push(
        `  ✗ ${p.account}: ${p.code}${p.serverCode ? ` (${p.serverCode})` : ""} since ${p.since}`,
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
    const { queued, sending, uncertain, failed } = status.spool;
    lines.push(
      `spool: ${queued} queued, ${sending} sending, ${uncertain} uncertain${uncertain ? " (an operator decides: look for the Message-ID in Sent Items)" : ""}, ${failed} failed${failed ? " (given up: see the log)" : ""}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
