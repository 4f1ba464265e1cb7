import { type Logger, safeLogger } from "@m365-mail/core";

const ORDER = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;

/** Log lines on stderr, one JSON object each, redacted by core's safeLogger. */
export function consoleLogger(level: keyof typeof ORDER): Logger {
  const min = ORDER[level];
  const line = (lvl: keyof typeof ORDER) => (message: string, data?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: message, ...data })}\n`,
    );
  };
  return safeLogger(
    { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") },
    "server",
  );
}
