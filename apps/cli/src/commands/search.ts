import type { MessageSearch, MessageSummary } from "@m365-mail/core";
import { type Command, type CommandContext, dateFlag, integerFlag, stringFlag, viaFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { formatAddresses, formatDate } from "../format.js";

export const searchCommand: Command = {
  name: "search",
  summary: "find messages by words, sender, recipient or subject (Graph $search, IMAP SEARCH)",
  positionals: [0, 100],
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    subject: { type: "string" },
    unread: { type: "boolean" },
    since: { type: "string" },
    limit: { type: "string", short: "n" },
  },
  help: `Usage: m365-mail search [words…] [--from <who>] [--to <who>] [--subject <words>] [--folder inbox] [-n 50] [--via graph|imap]

Every condition must hold, and every word of one: \`search march invoice\` finds messages with both words,
in any order (not the phrase). Words match whole words or their start over Graph, any part of a word
over IMAP, in any case.
  m365-mail search invoice march --from alice
  m365-mail search --subject "quarterly report" --folder archive --json

Options:
  [words]…                words anywhere: subject, body, sender, recipients (each must appear)
  --from, --to <who>      part of an address or name
  --subject <words>       words in the subject (each must appear)
  --folder <name>         default inbox
  --unread, --since <date> as for \`list\`
  -n, --limit <n>         at most this many (default 50; Graph returns at most 1,000 per search)
  --via graph|imap        default graph
  --json                  { ok, via, folder, search, messages: [...] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "imap"], "graph", "search");
    const folder = stringFlag(flags, "folder") ?? "inbox";
    const limit = integerFlag(flags, "limit", 50);
    const since = dateFlag(flags, "since");
    const search: MessageSearch = {
      ...(ctx.positionals.join(" ").trim() ? { text: ctx.positionals.join(" ").trim() } : {}),
      ...(stringFlag(flags, "from") ? { from: stringFlag(flags, "from")! } : {}),
      ...(stringFlag(flags, "to") ? { to: stringFlag(flags, "to")! } : {}),
      ...(stringFlag(flags, "subject") ? { subject: stringFlag(flags, "subject")! } : {}),
    };
    if (Object.keys(search).length === 0) {
      throw usageError("search needs something to look for", "Give words, --from, --to or --subject.");
    }
    const session = await ctx.session({ transports: [via] });
    const bar = out.bar({ label: `searching ${folder}`, unit: "items", total: limit });
    const messages: MessageSummary[] = [];
    try {
      const transport = session.mailbox.transport(via);
      const query = {
        folder,
        limit,
        search,
        ...(since ? { since } : {}),
        ...(flags.unread === true ? { unreadOnly: true } : {}),
      };
      for await (const message of transport.listMessages(query, { signal: ctx.signal })) {
        messages.push(message);
        bar.advance(1);
        if (messages.length >= limit) break;
      }
    } finally {
      bar.stop();
      await session.close().catch(() => {});
    }
    if (out.json) {
      out.data({ ok: true, via, folder, search, messages });
      return EXIT.OK;
    }
    if (messages.length === 0) {
      out.err(`nothing in ${folder} matches`);
      return EXIT.OK;
    }
    out.table(
      [{ header: "Received" }, { header: "From" }, { header: "Subject", flex: true }, { header: "Id" }],
      messages.map((m) => [
        formatDate(m.receivedAt),
        m.from ? formatAddresses([m.from]) : "",
        m.subject || out.paint.dim("(no subject)"),
        m.id,
      ]),
    );
    return EXIT.OK;
  },
};
