import type { Address, CalendarEvent, DateRange } from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import { type GraphRecipient, toAddress } from "./graph-message.js";
import { OPERATIONS } from "./operations.js";

interface GraphDateTime {
  dateTime?: string;
  timeZone?: string;
}

interface GraphEvent {
  id: string;
  subject?: string | null;
  start?: GraphDateTime;
  end?: GraphDateTime;
  isAllDay?: boolean;
  location?: { displayName?: string };
  organizer?: GraphRecipient;
  attendees?: GraphRecipient[];
  bodyPreview?: string;
}

interface EventPage {
  value?: GraphEvent[];
  "@odata.nextLink"?: string;
}

const EVENT_FIELDS = "id,subject,start,end,isAllDay,location,organizer,attendees,bodyPreview";

/** Events overlapping the range, recurring ones expanded (`calendarView`), every page. */
export async function* listEvents(
  ctx: GraphContext,
  range: DateRange,
  signal?: AbortSignal,
): AsyncGenerator<CalendarEvent> {
  // Times come back in UTC, so they convert to Date without a time zone table.
  const headers = { Prefer: 'outlook.timezone="UTC"' };
  let url: string | undefined =
    `${ctx.mailboxPath}/calendarView?startDateTime=${encodeURIComponent(range.start.toISOString())}` +
    `&endDateTime=${encodeURIComponent(range.end.toISOString())}&$top=100&$select=${EVENT_FIELDS}`;
  while (url) {
    const { data }: { data: EventPage } = await ctx.http.request<EventPage>(
      OPERATIONS.calendarView,
      "GET",
      url,
      {
        headers,
        signal,
      },
    );
    for (const e of data?.value ?? []) yield toEvent(e);
    url = data?.["@odata.nextLink"];
  }
}

function toDate(value: GraphDateTime | undefined): Date {
  const text = value?.dateTime ?? "";
  return new Date(/(Z|[+-]\d\d:\d\d)$/.test(text) ? text : `${text}Z`);
}

function toEvent(e: GraphEvent): CalendarEvent {
  const organizer = toAddress(e.organizer);
  return {
    id: e.id,
    subject: e.subject ?? "",
    start: toDate(e.start),
    end: toDate(e.end),
    isAllDay: e.isAllDay ?? false,
    ...(e.location?.displayName ? { location: e.location.displayName } : {}),
    ...(organizer ? { organizer } : {}),
    attendees: (e.attendees ?? []).map(toAddress).filter((a): a is Address => a !== undefined),
    ...(e.bodyPreview ? { bodyPreview: e.bodyPreview } : {}),
  };
}
