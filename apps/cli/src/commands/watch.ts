import { type Command, type CommandContext, integerFlag, stringFlag, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { formatAddresses, formatDate } from "../format.js";

export const watchCommand: Command = {
  name: "watch",
  summary: "print new mail as it arrives (IMAP IDLE or Graph delta) until Ctrl-C",
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    count: { type: "string" },
    timeout: { type: "string" },
    interval: { type: "string" },
  },
  help: `Usage: m365-mail watch [--via imap|graph] [--folder inbox] [--count <n>] [--timeout <seconds>] [--json]

Prints each message that arrives from now on, one line each, until Ctrl-C. Survives token expiry
and reconnects without losing or repeating mail.

Options:
  --via imap|graph      IMAP IDLE (default; pushed at once) or Graph delta (polled every --interval)
  --folder <name>       default inbox
  --count <n>           stop after n new messages
  --timeout <seconds>   stop after this long (exit code 1 if --count was not reached)
  --interval <seconds>  Graph poll interval (default 15)
  --json                one JSON object per line: { "type": "created", "message": { … } }

A sign-in problem that needs a person (MFA required, password expired, sign-in revoked, …) is printed
once (--json: "type": "sign-in.problem") and ends the watch with exit code 3: fix it, then watch again.
Outages (throttling, a server gone for a while) are retried without ending the watch.`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["imap", "graph"], "imap", "watch");
    const folder = stringFlag(flags, "folder") ?? "inbox";
    const count = flags.count === undefined ? undefined : integerFlag(flags, "count", 1);
    const timeout = flags.timeout === undefined ? undefined : integerFlag(flags, "timeout", 1);
    const interval = integerFlag(flags, "interval", 15);
    const session = await ctx.session({ transports: [via], graphWatchIntervalMs: interval * 1000 });
    // A sign-in that breaks (MFA turned on, password expired, sign-in revoked) is said once; the
    // transport's watch then ends with that error (exit 3), as retrying cannot fix it.
    const stopHealth = session.auth.onHealthChange((event) => {
      if (out.json) {
        out.record({ ...event, type: `sign-in.${event.type}`, at: event.at.toISOString() });
      } else if (event.type === "problem") {
        out.err(out.paintErr.fail(`sign-in problem (${event.code}): ${event.message}`));
      } else {
        out.err(out.paintErr.ok(`sign-in of ${event.username} works again (${event.code} cleared)`));
      }
    });
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop.abort();
          }, timeout * 1000);
    let seen = 0;
    try {
      const transport = session.mailbox.transport(via);
      out.err(
        out.paintErr.dim(
          `watching ${folder} of ${session.auth.username} over ${via === "imap" ? "IMAP IDLE" : `Graph delta (every ${interval} s)`}; Ctrl-C stops`,
        ),
      );
      for await (const event of transport.watch!({ folder }, { signal: stop.signal })) {
        if (event.type !== "created") continue;
        seen++;
        const m = event.message;
        if (out.json) out.record(event);
        else {
          out.out(
            `${formatDate(m.receivedAt ?? new Date())}  ${m.from ? formatAddresses([m.from]) : "?"}  ${m.subject || "(no subject)"}  ${out.paint.dim(m.id)}`,
          );
        }
        if (count !== undefined && seen >= count) break;
      }
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    } finally {
      if (timer) clearTimeout(timer);
      stopHealth();
      ctx.signal.removeEventListener("abort", onAbort);
      await session.close().catch(() => {});
    }
    if (timedOut && count !== undefined && seen < count) {
      out.err(`${seen} of ${count} message(s) arrived within ${timeout} s`);
      return EXIT.FAILED;
    }
    return EXIT.OK;
  },
};
