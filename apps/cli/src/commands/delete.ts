import { type Command, type CommandContext, viaFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

export const deleteCommand: Command = {
  name: "delete",
  summary: "delete messages: to Deleted Items, or for good with --permanent (Graph or IMAP)",
  positionals: [1, 100],
  options: { via: { type: "string" }, permanent: { type: "boolean" } },
  help: `Usage: m365-mail delete <id>… [--permanent] [--via graph|imap]

Like Outlook's Delete key: the message moves to Deleted Items (its new id is printed). With
--permanent it is removed (Graph: DELETE, which Exchange keeps in Recoverable Items for a while;
IMAP: \\Deleted + UID EXPUNGE of that message only).

Options:
  --permanent            remove instead of moving to Deleted Items
  --via graph|imap       default graph (Mail.ReadWrite)
  --json                 { ok, via, deleted: [{ id, movedTo? }] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "imap"], "graph", "delete");
    for (const id of ctx.positionals) checkMessageId(id, via, "delete");
    const permanent = flags.permanent === true;
    if (ctx.positionals.length === 0) throw usageError("delete needs an id", "Give the id `list` printed.");
    const session = await ctx.session({ transports: [via] });
    const deleted: { id: string; movedTo?: string }[] = [];
    try {
      const transport = session.mailbox.transport(via);
      for (const id of ctx.positionals) {
        if (permanent || via === "imap") {
          // IMAP's deleteMessage already moves to Deleted Items unless asked to expunge.
          await operation(
            transport,
            "deleteMessage",
            "delete",
            "--via graph or --via imap",
          )(id, {
            signal: ctx.signal,
            ...(via === "imap" ? { permanent } : {}),
          } as { signal: AbortSignal });
          deleted.push({ id });
        } else {
          const movedTo = await operation(
            transport,
            "moveMessage",
            "delete",
            "--via graph or --via imap",
          )(id, "trash", { signal: ctx.signal });
          deleted.push({ id, movedTo });
        }
      }
    } finally {
      await session.close().catch(() => {});
    }
    if (out.json) out.data({ ok: true, via, deleted });
    else
      for (const d of deleted)
        out.out(
          `${out.paint.ok("✓")} ${d.movedTo ? `moved to Deleted Items: ${d.movedTo}` : `deleted ${d.id}`}`,
        );
    return EXIT.OK;
  },
};
