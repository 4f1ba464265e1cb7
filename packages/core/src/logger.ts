import { redact, redactValue } from "./redact.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** The logging contract. Pass `console`-like sinks through `safeLogger` so nothing secret escapes. */
export interface Logger {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Wraps any logger so that every message and field is redacted first. */
export function safeLogger(sink: Logger | undefined, scope?: string): Logger {
  if (!sink) return silentLogger;
  const wrap =
    (level: LogLevel) =>
    (message: string, data?: Record<string, unknown>): void => {
      const text = redact(scope ? `[${scope}] ${message}` : message);
      if (data === undefined) sink[level](text);
      else sink[level](text, redactValue(data) as Record<string, unknown>);
    };
  return { debug: wrap("debug"), info: wrap("info"), warn: wrap("warn"), error: wrap("error") };
}
