import { parseArgs } from "node:util";
import { type Command, type CommandContext, helpOf, type OptionSpec } from "./command.js";
import { bridgeCommand } from "./commands/bridge.js";
import { calendarCommand } from "./commands/calendar.js";
import { deleteCommand } from "./commands/delete.js";
import { demoCommand } from "./commands/demo.js";
import { doctorCommand } from "./commands/doctor.js";
import { downloadCommand } from "./commands/download.js";
import { draftCommand } from "./commands/draft.js";
import { emulatorCommand } from "./commands/emulator.js";
import { foldersCommand } from "./commands/folders.js";
import { forwardCommand } from "./commands/forward.js";
import { listCommand } from "./commands/list.js";
import { loginCommand } from "./commands/login.js";
import { markCommand } from "./commands/mark.js";
import { moveCommand } from "./commands/move.js";
import { readCommand } from "./commands/read.js";
import { replyCommand } from "./commands/reply.js";
import { searchCommand } from "./commands/search.js";
import { sendCommand } from "./commands/send.js";
import { tokenCommand } from "./commands/token.js";
import { watchCommand } from "./commands/watch.js";
import {
  type Credentials,
  type Flags,
  GLOBAL_OPTIONS,
  loadConfig,
  type ResolvedConfig,
  requireCredentials,
  requireIdentity,
} from "./config.js";
import { EXIT, exitCodeFor, usageError } from "./exit-codes.js";
import { Output } from "./output.js";
import { openSession } from "./session.js";

export const COMMANDS: readonly Command[] = [
  doctorCommand,
  loginCommand,
  tokenCommand,
  sendCommand,
  foldersCommand,
  listCommand,
  readCommand,
  searchCommand,
  replyCommand,
  forwardCommand,
  draftCommand,
  markCommand,
  moveCommand,
  deleteCommand,
  downloadCommand,
  watchCommand,
  calendarCommand,
  emulatorCommand,
  bridgeCommand,
  demoCommand,
];

const VERSION = "0.1.0";

const USAGE = `m365-mail — act as one Microsoft 365 user (ROPC) over Graph, SMTP, IMAP and POP3

Usage: m365-mail <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n")}

Connection (flags, else environment, else .env, else the config file's profile):
  --tenant <id>           M365_TENANT_ID       Directory (tenant) ID
  --client-id <id>        M365_CLIENT_ID       Application (client) ID of the app registration
  -u, --username <upn>    M365_USERNAME        the mailbox user, e.g. support@contoso.com
  --password-file <path>  M365_PASSWORD_FILE   a file holding only the password (or M365_PASSWORD;
                                               on a terminal you are asked; --password works but warns)
  --cloud <name>          M365_CLOUD           global (default), usgovhigh, usdod, china
  --authority-host <url>  M365_AUTHORITY_HOST  Entra ID host (the emulator's, a private endpoint)
  --ca-file <path>        M365_CA_FILE         extra CA to trust (NODE_EXTRA_CA_CERTS is read too)
  --graph-origin <url>    M365_GRAPH_ORIGIN    Graph host, when not the cloud's
  --smtp-host/--smtp-port, --imap-host/--imap-port, --pop3-host/--pop3-port   M365_SMTP_HOST, …
  --engine msal|http      M365_ENGINE          token engine (default msal)
  --federation <mode>     M365_FEDERATION      AD FS users: auto (default), ws-trust or direct
  --auth ropc|device-code M365_AUTH            password grant (default) or the sign-in stored by
                                               \`m365-mail login --device-code\` (no password)
  --token-cache-file <p>  M365_TOKEN_CACHE_FILE  where login stores it (default token-cache.json
                                               beside the config file; key: M365_CACHE_KEY or token-cache.key)
  --mailbox <address>     M365_MAILBOX         a shared mailbox to work on (default: your own);
                                               needs Full Access (and Send As to send) on it
  --profile <name>        M365_PROFILE         a profile of the config file
  --config <path>         M365_CONFIG          default ~/.config/m365-mail/config.json
  --env-file <path>                            default ./.env

Output:
  --json        machine-readable output on stdout (every command)
  --no-color    no colours (also when NO_COLOR is set or output is not a terminal)
  -v, --verbose the packages' log lines (redacted) on stderr
  -h, --help    help; \`m365-mail <command> --help\` for a command's options

Exit codes: 0 ok · 1 a check or operation failed · 2 usage or configuration error ·
            3 sign-in or permission refused (a tenant setting must change) · 4 throttled, timed out or
            unreachable (try again later) · 130 interrupted`;

function findCommand(argv: readonly string[]): {
  command: Command | undefined;
  name: string | undefined;
  rest: string[];
} {
  // First pass: only the global options are known, so the first positional is the command name.
  const { tokens } = parseArgs({
    args: [...argv],
    options: GLOBAL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === "positional");
  if (first?.kind !== "positional") return { command: undefined, name: undefined, rest: [...argv] };
  const rest = [...argv.slice(0, first.index), ...argv.slice(first.index + 1)];
  return { command: COMMANDS.find((c) => c.name === first.value), name: first.value, rest };
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/** Runs the command line and returns the exit code; never throws. */
export async function main(argv: readonly string[], options: RunOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const wantsJson = argv.includes("--json");
  let out = new Output({ json: wantsJson, noColor: argv.includes("--no-color"), env });
  try {
    const { command, name, rest } = findCommand(argv);
    if (!command) {
      if (name === undefined) {
        if (argv.includes("--version")) {
          out.out(VERSION);
          return EXIT.OK;
        }
        const help = argv.includes("--help") || argv.includes("-h");
        (help ? out.out.bind(out) : out.err.bind(out))(USAGE);
        return help ? EXIT.OK : EXIT.USAGE;
      }
      if (name === "help") {
        const topic = COMMANDS.find((c) => c.name === rest.find((a) => !a.startsWith("-")));
        out.out(topic ? await helpOf(topic) : USAGE);
        return EXIT.OK;
      }
      throw usageError(
        `unknown command "${name}"`,
        `Use one of: ${COMMANDS.map((c) => c.name).join(", ")} (m365-mail --help).`,
      );
    }
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...GLOBAL_OPTIONS, ...(command.options as Record<string, OptionSpec>) },
        strict: true,
        allowPositionals: true,
      });
    } catch (error) {
      throw usageError(
        `${command.name}: ${(error as Error).message.replace(/\. To specify a positional argument.*$/s, "")}`,
        `Run \`m365-mail ${command.name} --help\`.`,
        error,
      );
    }
    const flags = parsed.values as Flags;
    out = new Output({ json: flags.json === true, noColor: flags["no-color"] === true, env });
    if (flags.help === true) {
      out.out(await helpOf(command));
      return EXIT.OK;
    }
    const [min, max] = command.positionals ?? [0, 0];
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw usageError(
        `${command.name} takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}${parsed.positionals.length ? ` (${parsed.positionals.join(" ")})` : ""}`,
        `Run \`m365-mail ${command.name} --help\`.`,
      );
    }
    const signal = options.signal ?? new AbortController().signal;
    let config: ResolvedConfig | undefined;
    let credentials: Credentials | undefined;
    const output = out;
    const ctx: CommandContext = {
      flags,
      positionals: parsed.positionals,
      out: output,
      signal,
      config: () => {
        config ??= loadConfig(flags, env, output);
        return config;
      },
      credentials: async () => {
        credentials ??= await requireCredentials(ctx.config(), output);
        return credentials;
      },
      session: async (sessionOptions) => {
        const config = ctx.config();
        // A device-code sign-in is stored: no password is read or asked for.
        const who = config.auth === "device-code" ? requireIdentity(config) : await ctx.credentials();
        return await openSession(config, who, { verbose: flags.verbose === true, ...sessionOptions });
      },
    };
    return await command.run(ctx);
  } catch (error) {
    out.error(error);
    return exitCodeFor(error);
  }
}
