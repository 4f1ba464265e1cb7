import type { MessageSummary } from "@m365-mail/core";
import { type Command, type CommandContext, dateFlag, integerFlag, stringFlag, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { formatAddresses, formatDate } from "../format.js";

export const listCommand: Command = {
  name: "list",
  summary: "list messages of a folder, newest first (Graph, IMAP or POP3)",
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    limit: { type: "string", short: "n" },
    unread: { type: "boolean" },
    since: { type: "string" },
  },
  help: `Usage: m365-mail list [--via graph|imap|pop3] [--folder inbox] [-n 20] [--unread] [--since <date>] [--json]

Lists messages newest first; the Id column is what \`m365-mail read\` takes (with the same --via).

Options:
  --via graph|imap|pop3   Microsoft Graph (default), IMAP, or POP3 (Inbox only, no read state)
  --folder <name>         a well-known name (inbox, sent, drafts, trash, junk, archive), a path or an id (default inbox)
  -n, --limit <n>         at most this many (default 20)
  --unread                unread messages only (not over POP3)
  --since <date>          received at or after, e.g. 2025-03-01, 2025-03-01T09:00, today
  --json                  { ok, via, folder, messages: [...] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "imap", "pop3"], "graph", "list");
    const folder = stringFlag(flags, "folder") ?? "inbox";
    const limit = integerFlag(flags, "limit", 20);
    const since = dateFlag(flags, "since");
    const session = await ctx.session({ transports: [via] });
    // A listing counts towards its limit: a bar with count, rate and ETA (only on a terminal, never with --json).
    const progress = out.bar({ label: `listing ${folder} over ${via}`, unit: "items", total: limit });
    try {
      const transport = session.mailbox.transport(via);
      const messages: MessageSummary[] = [];
      const query = {
        folder,
        limit,
        ...(since ? { since } : {}),
        ...(flags.unread === true ? { unreadOnly: true } : {}),
      };
      for await (const message of transport.listMessages!(query, { signal: ctx.signal })) {
        messages.push(message);
        progress.advance(1);
        if (messages.length >= limit) break;
      }
      progress.stop();
      if (out.json) {
        out.data({ ok: true, via, folder, messages });
        return EXIT.OK;
      }
      if (messages.length === 0) {
        out.err(
          `no messages in ${folder}${flags.unread === true ? " (unread)" : ""}${since ? ` since ${formatDate(since)}` : ""}`,
        );
        return EXIT.OK;
      }
      const unreadMark = (m: MessageSummary) => (m.isRead === false ? out.paint.bold("•") : " ");
      out.table(
        [
          { header: " " },
          { header: "Received" },
          { header: "From" },
          { header: "Subject", flex: true },
          { header: "Id" },
        ],
        messages.map((m) => [
          unreadMark(m),
          formatDate(m.receivedAt),
          m.from ? formatAddresses([m.from]) : "",
          m.subject || out.paint.dim("(no subject)"),
          m.id,
        ]),
      );
      return EXIT.OK;
    } finally {
      progress.stop();
      await session.close().catch(() => {});
    }
  },
};
