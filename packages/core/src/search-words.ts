/**
 * The words of one `MessageSearch` field, as every transport searches them: split at white space, each
 * word on its own (ANDed, any order). Quotes and backslashes are no syntax: they become spaces (Graph's
 * quoted `$search` value could not hold them, so no transport gives them a meaning).
 */
export function searchWords(value: string | undefined): string[] {
  return (value ?? "").replace(/["\\]/g, " ").split(/\s+/).filter(Boolean);
}
