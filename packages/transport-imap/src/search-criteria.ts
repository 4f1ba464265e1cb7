import type { MessageQuery } from "@m365-mail/core";
import type { SearchObject } from "imapflow";

/**
 * The core query as IMAP `SEARCH` criteria (all ANDed). IMAP matches substrings, case-insensitively;
 * each field is one string (several words must appear together, as a phrase). "to" covers To and
 * Cc, as Graph's `to:` does.
 */
export function searchCriteria(query: MessageQuery): SearchObject {
  const criteria: SearchObject = {};
  if (query.since) criteria.since = query.since;
  if (query.unreadOnly) criteria.seen = false;
  const search = query.search;
  const value = (text: string | undefined) => text?.trim() || undefined;
  const text = value(search?.text);
  const from = value(search?.from);
  const to = value(search?.to);
  const subject = value(search?.subject);
  if (text) criteria.text = text;
  if (from) criteria.from = from;
  if (subject) criteria.subject = subject;
  if (to) criteria.or = [{ to }, { cc: to }];
  return Object.keys(criteria).length > 0 ? criteria : { all: true };
}
