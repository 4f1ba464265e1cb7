import type { Credentials, Flags, ResolvedConfig } from "./config.js";
import { usageError } from "./exit-codes.js";
import type { Output } from "./output.js";
import type { Session, SessionOptions, Via } from "./session.js";

export type OptionSpec = { type: "string" | "boolean"; short?: string; multiple?: boolean };

/** What a command receives: its parsed flags, the output, and lazy access to config and sign-in. */
export interface CommandContext {
  readonly flags: Flags;
  readonly positionals: readonly string[];
  readonly out: Output;
  /** Aborted on Ctrl-C / SIGTERM: commands stop, clean up and return. */
  readonly signal: AbortSignal;
  config(): ResolvedConfig;
  /** Tenant, client, user, password (asking on a terminal when none is configured). */
  credentials(): Promise<Credentials>;
  /** Signs in lazily (on first use) and creates the transports the command needs. */
  session(options: SessionOptions): Promise<Session>;
}

export interface Command {
  readonly name: string;
  /** One line for `m365-mail --help`. */
  readonly summary: string;
  /** The command's `--help`; a function when the text comes from a package loaded only when used. */
  readonly help: string | (() => Promise<string>);
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Positional arguments allowed: [min, max]. @default [0, 0] */
  readonly positionals?: readonly [number, number];
  /** Returns the exit code. Errors thrown are printed and mapped by `exitCodeFor`. */
  run(ctx: CommandContext): Promise<number>;
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === "string" ? value : undefined;
}

export function listFlag(flags: Flags, name: string): string[] {
  const value = flags[name];
  if (Array.isArray(value)) return value;
  return typeof value === "string" ? [value] : [];
}

export function viaFlag<V extends Via>(flags: Flags, allowed: readonly V[], fallback: V, command: string): V {
  const value = stringFlag(flags, "via") ?? fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw usageError(
      `${command} --via must be one of ${allowed.join(", ")}, got "${value}"`,
      `Run \`m365-mail ${command} --help\`.`,
    );
  }
  return value as V;
}

export function integerFlag(flags: Flags, name: string, fallback: number, min = 1): number {
  const value = stringFlag(flags, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw usageError(`--${name} must be a whole number of at least ${min}, got "${value}"`, `Fix --${name}.`);
  }
  return n;
}

/** Accepts ISO dates and times ("2025-03-01", "2025-03-01T09:00"), "today", "tomorrow", "yesterday". */
export function dateFlag(flags: Flags, name: string, now = new Date()): Date | undefined {
  const value = stringFlag(flags, name);
  if (value === undefined) return undefined;
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const relative: Record<string, number> = { today: 0, tomorrow: 1, yesterday: -1 };
  if (value in relative) return new Date(startOfToday.getTime() + relative[value]! * 86_400_000);
  // A bare date means local midnight, as a person reading a calendar expects.
  const parsed = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00`) : new Date(value);
  if (Number.isNaN(parsed.getTime())) {
    throw usageError(
      `--${name} must be a date such as 2025-03-01, 2025-03-01T09:00 or today, got "${value}"`,
      `Fix --${name}.`,
    );
  }
  return parsed;
}

/** A command's `--help` text. */
export async function helpOf(command: Command): Promise<string> {
  return typeof command.help === "string" ? command.help : await command.help();
}
