import { type Command, type CommandContext, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";

export const foldersCommand: Command = {
  name: "folders",
  summary: "list the mailbox's folders with message counts (Graph or IMAP)",
  options: { via: { type: "string" } },
  help: `Usage: m365-mail folders [--via graph|imap] [--json]

Lists every mail folder with its unread and total counts.

Options:
  --via graph|imap   Microsoft Graph (default; Mail.Read) or IMAP (IMAP.AccessAsUser.All)
  --json             { ok, via, folders: [{ id, name, path, specialUse, unreadCount, totalCount }] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out } = ctx;
    const via = viaFlag(ctx.flags, ["graph", "imap"], "graph", "folders");
    const session = await ctx.session({ transports: [via] });
    const progress = out.progress(`listing folders over ${via}`);
    try {
      const transport = session.mailbox.transport(via);
      const folders = await transport.listFolders!({ signal: ctx.signal });
      progress.stop();
      if (out.json) {
        out.data({ ok: true, via, folders });
        return EXIT.OK;
      }
      const sorted = [...folders].sort((a, b) => a.path.localeCompare(b.path));
      out.table(
        [
          { header: "Folder", flex: true },
          { header: "Special" },
          { header: "Unread", right: true },
          { header: "Total", right: true },
        ],
        sorted.map((f) => [
          f.path,
          f.specialUse ?? "",
          String(f.unreadCount ?? ""),
          String(f.totalCount ?? ""),
        ]),
      );
      return EXIT.OK;
    } finally {
      progress.stop();
      await session.close().catch(() => {});
    }
  },
};
