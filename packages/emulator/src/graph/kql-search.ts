import type { ParsedMail } from "mailparser";
import { badRequest, GraphError } from "./graph-error.js";

/**
 * `$search` on messages: the OData string (`"…"`, inner quotes `\"`-escaped) holding a KQL query —
 * property restrictions (`from:`, `to:`, `cc:`, `bcc:`, `recipients:` = to/cc/bcc, `participants:` =
 * from/to/cc/bcc, `subject:`, `body:`), bare words (from, subject and body), quoted phrases, `AND`, `OR`,
 * `NOT` (upper case, as KQL's operators are), implicit AND between terms, and parentheses.
 */
export type MessageSearch =
  | { kind: "term"; property: SearchProperty | "any"; words: string[] }
  | { kind: "and" | "or"; parts: MessageSearch[] }
  | { kind: "not"; part: MessageSearch };

const SEARCH_PROPERTIES = [
  "from",
  "to",
  "cc",
  "bcc",
  "recipients",
  "participants",
  "subject",
  "body",
] as const;
type SearchProperty = (typeof SEARCH_PROPERTIES)[number];

/**
 * Graph refuses `$orderby` and `$filter` next to `$search` on messages (results come newest sent
 * first). https://learn.microsoft.com/en-us/graph/search-query-parameter
 */
export function parseMessageSearch(query: URLSearchParams): MessageSearch | undefined {
  const raw = query.get("$search");
  if (raw === null) return undefined;
  for (const other of ["$orderby", "$filter"]) {
    if (query.get(other) !== null) {
      const name = other === "$orderby" ? "$orderBy" : other;
      throw new GraphError(
        400,
        "BadRequest",
        `The query parameter '${name}' is not supported with '$search'.`,
      );
    }
  }
  const text = odataString(raw.trim());
  if (text.trim() === "")
    throw badRequest("Syntax error: character '\"' is not valid at position 0 in '\"\"'.");
  const tokens = tokenize(text);
  let at = 0;
  const syntaxError = () => badRequest(`Syntax error in the search query '${text}'.`);
  const orExpression = (): MessageSearch => {
    const parts = [andExpression()];
    while (tokens[at]?.kind === "OR") {
      at++;
      parts.push(andExpression());
    }
    return parts.length === 1 ? parts[0]! : { kind: "or", parts };
  };
  const andExpression = (): MessageSearch => {
    const parts = [unary()];
    for (;;) {
      const next = tokens[at];
      if (!next || next.kind === "OR" || next.kind === ")") break;
      if (next.kind === "AND") at++;
      parts.push(unary());
    }
    return parts.length === 1 ? parts[0]! : { kind: "and", parts };
  };
  const unary = (): MessageSearch => {
    const token = tokens[at++];
    if (!token) throw syntaxError();
    if (token.kind === "NOT") return { kind: "not", part: unary() };
    if (token.kind === "(") {
      const inner = orExpression();
      if (tokens[at++]?.kind !== ")") throw syntaxError();
      return inner;
    }
    if (token.kind !== "term") throw syntaxError();
    return token.term;
  };
  const expression = orExpression();
  if (at !== tokens.length) throw syntaxError();
  return expression;
}

/** The OData search phrase `"…"` with its `\"` and `\\` escapes undone; an unquoted value as it is. */
function odataString(raw: string): string {
  if (!(raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"'))) return raw;
  return raw.slice(1, -1).replace(/\\(["\\])/g, "$1");
}

type Token = { kind: "AND" | "OR" | "NOT" | "(" | ")" } | { kind: "term"; term: MessageSearch };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  // A quoted phrase, a property restriction (its value a phrase or a word), a parenthesis, or a word.
  const pattern = /\s*(?:(\w+):(?:"([^"]*)"?|([^\s()"]*))|"([^"]*)"?|([()])|([^\s()"]+))/gy;
  for (let match = pattern.exec(text); match && match[0] !== ""; match = pattern.exec(text)) {
    const [, name, propertyPhrase, propertyWord, phrase, paren, word] = match;
    if (paren) tokens.push({ kind: paren as "(" | ")" });
    else if (word === "AND" || word === "OR" || word === "NOT") tokens.push({ kind: word });
    else if (name !== undefined) {
      const property = SEARCH_PROPERTIES.find((p) => p === name.toLowerCase());
      const value = propertyPhrase ?? propertyWord ?? "";
      // An unknown property is searched as words, as Exchange does with unknown prefixes.
      tokens.push(term(property ?? "any", property ? value : `${name} ${value}`));
    } else tokens.push(term("any", phrase ?? word ?? ""));
  }
  return tokens;
}

function term(property: SearchProperty | "any", value: string): Token {
  const words = value.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return { kind: "term", term: { kind: "term", property, words } };
}

/**
 * A term matches when its words appear in that order, each starting a word of the field (Exchange
 * matches word prefixes, case-insensitive); punctuation between them does not count. A term with no
 * words (only punctuation) matches everything, as the index has nothing to look up.
 */
export function matchesSearch(parsed: ParsedMail, search: MessageSearch): boolean {
  const addresses = (value: ParsedMail["to"]) =>
    (Array.isArray(value) ? value : value ? [value] : [])
      .flatMap((group) => group.value)
      .map((entry) => `${entry.name ?? ""} ${entry.address ?? ""}`)
      .join(" ");
  const from = addresses(parsed.from);
  const to = addresses(parsed.to);
  const cc = addresses(parsed.cc);
  const bcc = addresses(parsed.bcc);
  const subject = parsed.subject ?? "";
  const body = `${parsed.text ?? ""} ${typeof parsed.html === "string" ? parsed.html.replace(/<[^>]+>/g, " ") : ""}`;
  const fields: Record<SearchProperty | "any", string[]> = {
    from: [from],
    to: [to],
    cc: [cc],
    bcc: [bcc],
    recipients: [to, cc, bcc],
    participants: [from, to, cc, bcc],
    subject: [subject],
    body: [body],
    any: [from, subject, body],
  };
  const evaluate = (node: MessageSearch): boolean => {
    switch (node.kind) {
      case "and":
        return node.parts.every(evaluate);
      case "or":
        return node.parts.some(evaluate);
      case "not":
        return !evaluate(node.part);
      case "term": {
        if (node.words.length === 0) return true;
        const sequence = node.words
          .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^\\p{L}\\p{N}]+");
        const pattern = new RegExp(`(^|[^\\p{L}\\p{N}])${sequence}`, "u");
        return fields[node.property].some((text) => pattern.test(text.toLowerCase()));
      }
    }
  };
  return evaluate(search);
}
