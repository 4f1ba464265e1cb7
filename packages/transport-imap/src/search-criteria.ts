import { type MessageQuery, searchWords } from "@m365-mail/core";
import type { SearchObject } from "imapflow";

/**
 * The core query as IMAP `SEARCH` criteria, all ANDed. IMAP matches substrings, case-insensitively.
 * A field of several words gives one key per word (`TEXT a TEXT b`: every word, in any order), as
 * Graph's KQL does with `a b`; quotes are no phrase marks there, so they are dropped here too. "to"
 * covers To and Cc, as Graph's `to:` does.
 */
export function searchCriteria(query: MessageQuery): SearchObject {
  const keys: SearchObject[] = [];
  if (query.since) keys.push({ since: query.since });
  if (query.unreadOnly) keys.push({ seen: false });
  const search = query.search ?? {};
  for (const w of searchWords(search.text)) keys.push({ text: w });
  for (const w of searchWords(search.from)) keys.push({ from: w });
  for (const w of searchWords(search.subject)) keys.push({ subject: w });
  for (const w of searchWords(search.to)) keys.push({ or: [{ to: w }, { cc: w }] });
  return keys.length > 0 ? allOf(keys) : { all: true };
}

/**
 * Several keys ANDed in one imapflow query. An object cannot hold the same key twice, so each key after
 * the first goes into a nested operand that imapflow puts in parentheses (IMAP ANDs the keys of a
 * parenthesized list): `or` with one operand is that operand, and `not` of `not` where the key itself is
 * an `or` (To or Cc). `TEXT a (TEXT b (SUBJECT c))`.
 */
function allOf([first, ...rest]: SearchObject[]): SearchObject {
  if (!first) return { all: true };
  if (rest.length === 0) return first;
  const next = allOf(rest);
  return first.or ? { ...first, not: { not: next } } : { ...first, or: [next] };
}
