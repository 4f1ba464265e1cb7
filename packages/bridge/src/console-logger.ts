import type { Logger, LogLevel } from "@m365-mail/core";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const ESCAPES: Record<string, string> = { "\r": "\\r", "\n": "\\n", "\t": "\\t" };

/**
 * Control characters written as escapes: a message carries what clients sent (a login name may hold
 * CR LF in an IMAP literal), and must not start a forged line of its own in the log.
 */
function escapeControls(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f\u2028\u2029]/g,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `text`: `<ISO time> <level> <message> {data}`; `json`: one JSON object per line, for a log collector. */
export type LogFormat = "text" | "json";

/** One log line in `format` (no newline). */
export function formatLogLine(
  format: LogFormat,
  level: LogLevel,
  message: string,
  data?: Record<string, unknown>,
): string {
  const time = new Date().toISOString();
  const hasData = data !== undefined && Object.keys(data).length > 0;
  // JSON escapes control characters itself; the fixed keys come last so data cannot replace them.
  if (format === "json") return JSON.stringify({ ...(hasData ? data : {}), time, level, message });
  return `${time} ${level} ${escapeControls(message)}${hasData ? ` ${JSON.stringify(data)}` : ""}`;
}

/**
 * One line per event on stderr — `2026-12-03T08:00:00.000Z info message {"key":"value"}`, or with
 * `format` "json" `{"key":"value","time":"2026-12-03T08:00:00.000Z","level":"info","message":"message"}` —
 * for journald or a container log. Wrap it in core's `safeLogger` (startBridge does) so nothing secret gets out.
 */
export function consoleLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  format: LogFormat = "text",
): Logger {
  const at =
    (name: LogLevel) =>
    (message: string, data?: Record<string, unknown>): void => {
      if (ORDER[name] < ORDER[level]) return;
      write(formatLogLine(format, name, message, data));
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
