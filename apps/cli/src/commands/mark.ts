import { type Command, type CommandContext, stringFlag, viaFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

export const markCommand: Command = {
  name: "mark",
  summary: "mark messages read or unread, flag or unflag them (Graph or IMAP)",
  positionals: [1, 100],
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    read: { type: "boolean" },
    unread: { type: "boolean" },
    flag: { type: "boolean" },
    unflag: { type: "boolean" },
  },
  help: `Usage: m365-mail mark <id>… (--read | --unread) (--flag | --unflag) [--via graph|imap]

  m365-mail mark AAMkAD… --read --flag

Options:
  --read / --unread      set or clear the read state
  --flag / --unflag      flag for follow-up, or clear the flag
  --via graph|imap       default graph (Mail.ReadWrite)
  --json                 { ok, via, ids, read?, flagged? }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "imap"], "graph", "mark");
    if (flags.read === true && flags.unread === true)
      throw usageError("--read and --unread both given", "Pick one.");
    if (flags.flag === true && flags.unflag === true)
      throw usageError("--flag and --unflag both given", "Pick one.");
    const read = flags.read === true ? true : flags.unread === true ? false : undefined;
    const flagged = flags.flag === true ? true : flags.unflag === true ? false : undefined;
    if (read === undefined && flagged === undefined) {
      throw usageError("mark needs what to set", "Add --read, --unread, --flag or --unflag.");
    }
    for (const id of ctx.positionals) checkMessageId(id, via, "mark");
    const folder = stringFlag(flags, "folder");
    const session = await ctx.session({ transports: [via] });
    try {
      const transport = session.mailbox.transport(via);
      const options = { signal: ctx.signal, ...(folder ? { folder } : {}) };
      for (const id of ctx.positionals) {
        if (read !== undefined)
          await operation(transport, "markRead", "mark", "--via graph or --via imap")(id, read, options);
        if (flagged !== undefined)
          await operation(transport, "setFlag", "flag", "--via graph or --via imap")(id, flagged, options);
      }
    } finally {
      await session.close().catch(() => {});
    }
    const state = [
      read === undefined ? "" : read ? "read" : "unread",
      flagged === undefined ? "" : flagged ? "flagged" : "unflagged",
    ]
      .filter(Boolean)
      .join(", ");
    if (out.json) {
      out.data({
        ok: true,
        via,
        ids: ctx.positionals,
        ...(read !== undefined ? { read } : {}),
        ...(flagged !== undefined ? { flagged } : {}),
      });
    } else out.out(`${out.paint.ok("✓")} ${ctx.positionals.length} message(s) ${state}`);
    return EXIT.OK;
  },
};
