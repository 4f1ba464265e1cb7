import { type Command, type CommandContext, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

export const moveCommand: Command = {
  name: "move",
  summary: "move a message to another folder (Graph or IMAP); prints its new id",
  positionals: [2, 2],
  options: { via: { type: "string" } },
  help: `Usage: m365-mail move <id> <folder> [--via graph|imap]

The folder is a well-known name (inbox, archive, junk, trash, …), a path ("Inbox/Receipts") or an id.
A moved message gets a new id (in Graph and in IMAP): the command prints it.

Options:
  --via graph|imap       default graph (Mail.ReadWrite)
  --json                 { ok, via, id, newId, folder }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const [id, folder] = ctx.positionals as [string, string];
    const via = viaFlag(flags, ["graph", "imap"], "graph", "move");
    checkMessageId(id, via, "move");
    const session = await ctx.session({ transports: [via] });
    let newId: string;
    try {
      const transport = session.mailbox.transport(via);
      newId = await operation(
        transport,
        "moveMessage",
        "move",
        "--via graph or --via imap",
      )(id, folder, {
        signal: ctx.signal,
      });
    } finally {
      await session.close().catch(() => {});
    }
    if (out.json) out.data({ ok: true, via, id, newId, folder });
    else out.out(`${out.paint.ok("✓")} moved to ${folder}: ${newId}`);
    return EXIT.OK;
  },
};
