import { type Command, type CommandContext, stringFlag } from "../command.js";

/**
 * `m365-mail bridge`: the package's own command (the same code as the `m365-mail-bridge` bin), so the CLI
 * and a service unit behave alike. The global `--config` names the bridge's config file here.
 */
export const bridgeCommand: Command = {
  name: "bridge",
  summary: "SMTP/IMAP/POP3 for password-only devices and apps, signed in to Microsoft 365 with OAuth2",
  options: {
    check: { type: "boolean" },
    "drain-ms": { type: "string" },
    url: { type: "string" },
    "secret-file": { type: "string" },
  },
  // `bridge status`, `bridge hash-secret`, `bridge login <account>`.
  positionals: [0, 2],
  // The bridge (smtp-server, the outbox with SQLite and Redis clients) loads only for this command: the
  // other commands start ~0.5 s sooner without it.
  help: async () => (await import("@m365-mail/bridge/command")).BRIDGE_HELP,
  async run(ctx: CommandContext): Promise<number> {
    const { runBridgeCommand } = await import("@m365-mail/bridge/command");
    const { flags } = ctx;
    const argv: string[] = [...ctx.positionals];
    for (const name of ["config", "drain-ms", "url", "secret-file"]) {
      const value = stringFlag(flags, name);
      if (value !== undefined) argv.push(`--${name}`, value);
    }
    if (flags.check === true) argv.push("--check");
    if (flags.json === true) argv.push("--json");
    let reload: (() => void) | undefined;
    const onHup = () => reload?.();
    process.on("SIGHUP", onHup);
    try {
      return await runBridgeCommand(argv, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        stdin: async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
          return Buffer.concat(chunks).toString("utf8");
        },
        env: process.env,
        signal: ctx.signal,
        onReloadRequest: (fn) => {
          reload = fn;
        },
      });
    } finally {
      process.off("SIGHUP", onHup);
    }
  },
};
