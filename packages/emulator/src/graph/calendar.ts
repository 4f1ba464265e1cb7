import type { DirectoryEvent, DirectoryUser } from "../directory.js";
import { GraphError } from "./graph-error.js";
import { shortHash } from "./mime.js";

/**
 * `calendarView` needs both ends of the window; Outlook's answer when one is missing.
 * Source: https://learn.microsoft.com/en-us/graph/api/user-list-calendarview (required query parameters).
 */
export function parseCalendarWindow(query: URLSearchParams): { start: number; end: number } {
  const get = (name: string) => {
    for (const [key, value] of query) if (key.toLowerCase() === name.toLowerCase()) return value;
    return undefined;
  };
  const startRaw = get("startDateTime");
  const endRaw = get("endDateTime");
  if (!startRaw || !endRaw) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
    );
  }
  const start = parseGraphTime(startRaw);
  const end = parseGraphTime(endRaw);
  if (Number.isNaN(start) || Number.isNaN(end)) {
    throw new GraphError(
      400,
      "ErrorInvalidParameter",
      "The parameter 'StartDateTime' or 'EndDateTime' is not a valid date.",
    );
  }
  return { start, end };
}

/** Properties of Graph's event resource we serve (lower-cased, for `$select` checks). */
export const EVENT_PROPERTIES = new Set(
  [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
  ].map((name) => name.toLowerCase()),
);

/** ISO 8601; without an offset the time is UTC (Graph reads it in the Prefer: outlook.timezone zone, default UTC). */
function parseGraphTime(text: string): number {
  const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(text.trim());
  return Date.parse(hasZone ? text : `${text}Z`);
}

/** Events of the directory user overlapping [start, end), earliest first. */
export function eventsInWindow(
  user: DirectoryUser,
  window: { start: number; end: number },
): DirectoryEvent[] {
  return (user.events ?? [])
    .filter((event) => Date.parse(event.end) > window.start && Date.parse(event.start) < window.end)
    .sort((a, b) => Date.parse(a.start) - Date.parse(b.start) || a.subject.localeCompare(b.subject));
}

/** "2025-01-01T10:00:00.0000000" in UTC, as Graph writes dateTimeTimeZone. */
function graphDateTime(iso: string): { dateTime: string; timeZone: string } {
  return { dateTime: `${new Date(iso).toISOString().slice(0, 19)}.0000000`, timeZone: "UTC" };
}

export function eventId(user: DirectoryUser, event: DirectoryEvent, index: number): string {
  return `AAMkAGV${Buffer.from(`${user.upn.toLowerCase()}\0${event.id ?? `${index}:${event.subject}:${event.start}`}`).toString("base64url")}`;
}

/** Graph's event resource, with the properties clients read. */
export function eventResource(
  user: DirectoryUser,
  event: DirectoryEvent,
  index: number,
): Record<string, unknown> {
  const id = eventId(user, event, index);
  const organizer = { emailAddress: { name: user.displayName, address: user.upn } };
  const body = event.body ?? "";
  return {
    "@odata.etag": `W/"${shortHash(id, event.subject, event.start, event.end)}"`,
    id,
    createdDateTime: event.start,
    lastModifiedDateTime: event.start,
    changeKey: shortHash(id, event.subject),
    categories: [],
    originalStartTimeZone: "UTC",
    originalEndTimeZone: "UTC",
    iCalUId: `040000008200E00074C5B7101A82E008${shortHash(id).replace(/[^A-Za-z0-9]/g, "0")}`,
    reminderMinutesBeforeStart: 15,
    isReminderOn: true,
    hasAttachments: false,
    subject: event.subject,
    bodyPreview: body.replace(/\s+/g, " ").trim().slice(0, 255),
    importance: "normal",
    sensitivity: "normal",
    isAllDay: event.isAllDay ?? false,
    isCancelled: false,
    isOrganizer: true,
    responseRequested: true,
    seriesMasterId: null,
    showAs: "busy",
    type: "singleInstance",
    webLink: `https://outlook.office365.com/owa/?itemid=${encodeURIComponent(id)}&exvsurl=1&path=/calendar/item`,
    onlineMeetingUrl: null,
    isOnlineMeeting: false,
    onlineMeetingProvider: "unknown",
    responseStatus: { response: "organizer", time: "0001-01-01T00:00:00Z" },
    body: { contentType: "text", content: body },
    start: graphDateTime(event.start),
    end: graphDateTime(event.end),
    location: {
      displayName: event.location ?? "",
      locationType: "default",
      uniqueIdType: "unknown",
      address: {},
      coordinates: {},
    },
    locations: event.location
      ? [{ displayName: event.location, locationType: "default", uniqueIdType: "unknown" }]
      : [],
    recurrence: null,
    attendees: (event.attendees ?? []).map((address) => ({
      type: "required",
      status: { response: "none", time: "0001-01-01T00:00:00Z" },
      emailAddress: { name: address, address },
    })),
    organizer,
  };
}
