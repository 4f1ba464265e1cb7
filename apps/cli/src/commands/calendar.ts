import type { CalendarEvent } from "@m365-mail/core";
import { type Command, type CommandContext, dateFlag, integerFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { formatDate } from "../format.js";

export const calendarCommand: Command = {
  name: "calendar",
  summary: "list calendar events in a date range (Graph calendarView, recurring events expanded)",
  options: {
    from: { type: "string" },
    to: { type: "string" },
    days: { type: "string" },
  },
  help: `Usage: m365-mail calendar [--from <date>] [--to <date> | --days <n>] [--json]

Lists the events of the signed-in user's calendar between two dates (Calendars.Read), recurring
events expanded into their occurrences.

Options:
  --from <date>   start (default: today 00:00 local time); 2025-03-01, 2025-03-01T09:00, today, tomorrow
  --to <date>     end (default: --from plus --days)
  --days <n>      length of the range in days (default 7)
  --json          { ok, start, end, events: [{ id, subject, start, end, isAllDay, location, organizer, attendees }] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const start = dateFlag(flags, "from") ?? dateFlag({ from: "today" }, "from")!;
    const days = integerFlag(flags, "days", 7);
    const end = dateFlag(flags, "to") ?? new Date(start.getTime() + days * 86_400_000);
    if (end <= start) throw usageError("--to must be after --from", "Swap the dates, or use --days.");
    const session = await ctx.session({ transports: ["graph"] });
    const progress = out.progress("reading the calendar over Microsoft Graph");
    const events: CalendarEvent[] = [];
    try {
      const graph = session.mailbox.transport("graph");
      for await (const event of graph.listEvents({ start, end }, { signal: ctx.signal })) events.push(event);
    } finally {
      progress.stop();
      await session.close().catch(() => {});
    }
    events.sort((a, b) => a.start.getTime() - b.start.getTime());
    if (out.json) {
      out.data({ ok: true, start, end, events });
      return EXIT.OK;
    }
    if (events.length === 0) {
      out.err(`no events between ${formatDate(start)} and ${formatDate(end)}`);
      return EXIT.OK;
    }
    out.table(
      [{ header: "Start" }, { header: "End" }, { header: "Subject", flex: true }, { header: "Location" }],
      events.map((e) => [
        e.isAllDay ? `${formatDate(e.start).slice(0, 10)} (all day)` : formatDate(e.start),
        e.isAllDay ? formatDate(new Date(e.end.getTime() - 1)).slice(0, 10) : formatDate(e.end),
        e.subject || out.paint.dim("(no subject)"),
        e.location ?? "",
      ]),
    );
    return EXIT.OK;
  },
};
