import type { LineReader } from "../relay/line-reader.js";

/** A client command before login: its tag, upper-cased name and arguments (quoted and literal strings decoded). */
export interface ImapCommand {
  readonly tag: string;
  readonly name: string;
  readonly args: readonly string[];
}

/** A command the bridge cannot parse: answered `BAD`, the session continues. */
export class ImapSyntaxError extends Error {
  constructor(
    message: string,
    readonly tag: string | undefined,
  ) {
    super(message);
    this.name = "ImapSyntaxError";
  }
}

/** A literal over `maxLiteralBytes`: answered and the connection closed (its bytes would follow). */
export class ImapLiteralTooLarge extends Error {
  constructor(
    readonly size: number,
    readonly tag: string | undefined,
  ) {
    super(`a literal of ${size} bytes is over the limit`);
    this.name = "ImapLiteralTooLarge";
  }
}

/**
 * A synchronizing literal the bridge will not ask for: before STARTTLS on a listener that needs TLS for
 * a password, `+` would invite the client to send it in clear. Answered `NO [PRIVACYREQUIRED]`.
 */
export class ImapLiteralRefused extends Error {
  constructor(readonly tag: string | undefined) {
    super("a literal before STARTTLS");
    this.name = "ImapLiteralRefused";
  }
}

// LOGIN takes two strings; a few more literals leave room for ID, nothing more is needed before login.
const MAX_LITERALS = 4;
const LITERAL = /^\{(\d{1,10})(\+?)\}$/;
const TAG = /^[\x21-\x7e]+$/;

/**
 * Reads one command in full (RFC 3501 / 9051 syntax, as much as is needed before login): atoms, quoted
 * strings with `\"` and `\\` escapes, `(` `)`, and literals `{n}` (the bridge answers `+` first) and
 * `{n+}` (RFC 7888 LITERAL+: the bytes follow at once), after which the command line continues.
 */
export async function readImapCommand(
  reader: LineReader,
  options: {
    maxLiteralBytes: number;
    goAhead: () => void;
    /** False while a synchronizing literal must not be asked for (before STARTTLS). @default true */
    literalsAllowed?: () => boolean;
  },
): Promise<ImapCommand> {
  const tokens: string[] = [];
  for (let literals = 0; ; literals++) {
    const line = (await reader.readLine()).toString("utf8");
    let literal: ReturnType<typeof tokenize>;
    try {
      literal = tokenize(line, tokens);
    } catch (error) {
      await discardCommand(reader, line, options.maxLiteralBytes, tokens[0]);
      throw error;
    }
    if (!literal) break;
    const tag = tokens[0];
    if (literals >= MAX_LITERALS) {
      await discardCommand(reader, line, options.maxLiteralBytes, tag);
      throw new ImapSyntaxError("Too many literals.", tag);
    }
    if (literal.size > options.maxLiteralBytes) throw new ImapLiteralTooLarge(literal.size, tag);
    if (!literal.nonSync) {
      if (options.literalsAllowed && !options.literalsAllowed()) throw new ImapLiteralRefused(tag);
      options.goAhead();
    }
    tokens.push((await reader.readBytes(literal.size)).toString("utf8"));
  }
  const [tag, name, ...args] = tokens;
  if (!tag) throw new ImapSyntaxError("Empty command.", undefined);
  if (!TAG.test(tag) || tag.includes("+") || tag === "*")
    throw new ImapSyntaxError("Invalid tag.", undefined);
  if (!name) throw new ImapSyntaxError("Missing command.", tag);
  return { tag, name: name.toUpperCase(), args };
}

const NON_SYNC_LITERAL_AT_END = /\{(\d{1,10})\+\}$/;

/**
 * The rest of a refused command: the bytes of a LITERAL+ `{n+}` that ends `line` are on their way (the
 * client does not wait for `+`), and so are the lines after them. They are read and dropped, so that
 * none of them is taken for a command of its own; a literal over the limit ends the connection.
 */
async function discardCommand(
  reader: LineReader,
  line: string,
  maxLiteralBytes: number,
  tag: string | undefined,
): Promise<void> {
  for (let literals = 0, current = line; ; literals++) {
    const match = NON_SYNC_LITERAL_AT_END.exec(current);
    if (!match) return;
    const size = Number(match[1]);
    if (size > maxLiteralBytes || literals > MAX_LITERALS) throw new ImapLiteralTooLarge(size, tag);
    await reader.readBytes(size);
    current = (await reader.readLine()).toString("utf8");
  }
}

/** Appends the line's tokens; returns the literal that ends it, if any. */
function tokenize(line: string, tokens: string[]): { size: number; nonSync: boolean } | undefined {
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === " ") {
      i++;
    } else if (c === "(" || c === ")") {
      tokens.push(c);
      i++;
    } else if (c === '"') {
      let value = "";
      i++;
      for (;;) {
        if (i >= line.length) throw new ImapSyntaxError("Unterminated quoted string.", tokens[0]);
        const d = line[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === "\\") {
          const next = line[i + 1];
          if (next !== '"' && next !== "\\")
            throw new ImapSyntaxError("Invalid escape in a quoted string.", tokens[0]);
          value += next;
          i += 2;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push(value);
    } else if (c === "{") {
      const match = LITERAL.exec(line.slice(i));
      if (!match) throw new ImapSyntaxError("Invalid literal.", tokens[0]);
      return { size: Number(match[1]), nonSync: match[2] === "+" };
    } else {
      let end = i;
      while (end < line.length && line[end] !== " " && line[end] !== ")") end++;
      tokens.push(line.slice(i, end));
      i = end;
    }
  }
  return undefined;
}
