/**
 * Which transport opens a message id. Mail events come from the watcher (IMAP IDLE or Graph delta)
 * and listings from the reader; they may differ (the defaults with graph and imap configured are
 * READ_VIA=graph, WATCH_VIA=imap), and an id from an event must still open with GET /v1/messages/:id.
 * The two shapes cannot be confused: IMAP ids are `folder:uidvalidity:uid` (transport-imap's
 * message-id.ts), Graph ids are base64url and hold no ":".
 */
export function transportForMessageId(
  id: string,
  registered: (name: string) => boolean,
  reader: string,
): string {
  if (IMAP_ID.test(id)) return registered("imap") ? "imap" : reader;
  if (!id.includes(":") && registered("graph")) return "graph";
  return reader;
}

const IMAP_ID = /^.+:\d+:\d+$/;
