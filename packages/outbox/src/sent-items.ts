import { M365MailError, type Mailbox } from "@m365-mail/core";

function normalizeId(id: string): string {
  return id.trim().replace(/^<|>$/g, "").toLowerCase();
}

export interface SentItemsIndexOptions {
  /** What to tell the operator when no transport can read Sent Items. */
  missingReaderHint?: string;
}

/**
 * Finds Message-IDs in the mailbox's Sent Items, where Exchange files every message it accepted (over
 * Graph and SMTP alike). `reader` names a transport of `mailbox` that can list the "sent" folder
 * (graph or imap); without one, nothing can be checked and uncertain messages go to an operator.
 * Concurrent look-ups share one listing, so recovering many messages after a crash costs one pass over
 * Sent Items, not one per message.
 */
export function sentItemsIndex(
  mailbox: Mailbox,
  reader: string | undefined,
  options: SentItemsIndexOptions = {},
) {
  // A listing is shared only by checks whose messages were claimed before it started: a listing taken
  // earlier might predate an attempt that was still in flight.
  let inflight: { since: number; startedAt: number; promise: Promise<Set<string>> } | undefined;
  const list = async (since: number): Promise<Set<string>> => {
    const transport = mailbox.transport(reader!);
    const found = new Set<string>();
    for await (const summary of transport.listMessages!({
      folder: "sent",
      since: new Date(since),
      pageSize: 500,
    })) {
      if (summary.internetMessageId) found.add(normalizeId(summary.internetMessageId));
    }
    return found;
  };
  return {
    available: reader !== undefined,
    reader,
    async has(messageId: string, since: number, claimedAt: number): Promise<boolean> {
      if (!reader) {
        throw new M365MailError(
          "NOT_SUPPORTED",
          "no transport can read Sent Items to check an uncertain send",
          {
            source: "outbox",
            hint:
              options.missingReaderHint ??
              "Give the outbox a reader for Sent Items (graph with Mail.Read, or imap), then retry or discard the message yourself.",
          },
        );
      }
      // Clocks differ: search from five minutes before the first attempt.
      const from = since - 5 * 60_000;
      if (!inflight || inflight.since > from || inflight.startedAt < claimedAt) {
        const entry = { since: from, startedAt: Date.now(), promise: list(from) };
        inflight = entry;
        const forget = () => {
          if (inflight === entry) inflight = undefined;
        };
        entry.promise.then(() => setTimeout(forget, 250).unref(), forget);
      }
      return (await inflight.promise).has(normalizeId(messageId));
    },
  };
}

export type SentItemsIndex = ReturnType<typeof sentItemsIndex>;
