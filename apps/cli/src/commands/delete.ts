import { type Command, type CommandContext, viaFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

export const deleteCommand: Command = {
  name: "delete",
  summary: "delete messages: to Deleted Items, or for good with --permanent (Graph or IMAP)",
  positionals: [1, 100],
  options: { via: { type: "string" }, permanent: { type: "boolean" } },
  help: `Usage: m365-mail delete <id>… [--permanent] [--via graph|imap]

Like Outlook's Delete key: the message moves to Deleted Items (its new id is printed, over Graph
and IMAP); a message already in Deleted Items is removed. With --permanent it is removed wherever
it is (Graph: DELETE, which Exchange keeps in Recoverable Items for a while; IMAP: \\Deleted +
UID EXPUNGE of that message only).

Options:
  --permanent            remove instead of moving to Deleted Items
  --via graph|imap       default graph (Mail.ReadWrite)
  --json                 { ok, via, deleted: [{ id, movedTo? | wasInDeletedItems? }] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "imap"], "graph", "delete");
    for (const id of ctx.positionals) checkMessageId(id, via, "delete");
    const permanent = flags.permanent === true;
    if (ctx.positionals.length === 0) throw usageError("delete needs an id", "Give the id `list` printed.");
    const session = await ctx.session({ transports: [via] });
    const deleted: { id: string; movedTo?: string; wasInDeletedItems?: true }[] = [];
    try {
      const transport = session.mailbox.transport(via);
      for (const id of ctx.positionals) {
        if (permanent) {
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
          // Outlook's Delete key: to Deleted Items, or for good when the message is there already.
          const movedTo = await operation(
            transport,
            "trashMessage",
            "delete",
            "--via graph or --via imap",
          )(id, { signal: ctx.signal });
          deleted.push(movedTo === undefined ? { id, wasInDeletedItems: true } : { id, movedTo });
        }
      }
    } finally {
      await session.close().catch(() => {});
    }
    if (out.json) out.data({ ok: true, via, deleted });
    else
      for (const d of deleted)
        out.out(
          `${out.paint.ok("✓")} ${d.movedTo ? `moved to Deleted Items: ${d.movedTo}` : `deleted ${d.id}${d.wasInDeletedItems ? " (it was in Deleted Items)" : ""}`}`,
        );
    return EXIT.OK;
  },
};
