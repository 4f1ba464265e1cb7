import { hintFor, isM365MailError, messageFor, redact } from "@m365-mail/core";
import { type ProgressBar, type ProgressBarOptions, progressBar } from "./progress-bar.js";

/** Where the command writes: stdout for results, stderr for progress, warnings and errors. */
export interface OutputStreams {
  stdout: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean; columns?: number });
  stderr: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean; columns?: number });
}

export interface OutputOptions {
  /** `--json`: one JSON document (or one per line for streams) on stdout, nothing else there. */
  json: boolean;
  /** `--no-color`. Colour is also off when NO_COLOR is set, TERM is dumb, or the stream is not a terminal. */
  noColor?: boolean;
  env?: NodeJS.ProcessEnv;
  streams?: OutputStreams;
}

export interface Paint {
  ok(text: string): string;
  fail(text: string): string;
  warn(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
  accent(text: string): string;
}

export interface Column {
  header: string;
  /** Right-align (numbers). */
  right?: boolean;
  /** This column is shortened with "…" to fit a terminal's width. */
  flex?: boolean;
}

/** A progress line for long work: animated on a terminal, silent when stderr is piped. */
export interface Progress {
  update(label: string): void;
  /** Removes the line. */
  stop(): void;
}

const ANSI = /\x1b\[[0-9;]*m/g;
export const visibleLength = (text: string): number => [...text.replace(ANSI, "")].length;

function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, noColor: boolean): boolean {
  if (noColor) return false;
  // https://no-color.org: any non-empty NO_COLOR disables colour.
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== "0") return true;
  if (env.TERM === "dumb") return false;
  return stream.isTTY === true;
}

function makePaint(enabled: boolean): Paint {
  const sgr = (open: number, close: number) => (text: string) =>
    enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    ok: sgr(32, 39),
    fail: sgr(31, 39),
    warn: sgr(33, 39),
    dim: sgr(2, 22),
    bold: sgr(1, 22),
    accent: sgr(36, 39),
  };
}

/**
 * Every byte the command prints goes through here, and through core's `redact()`: a password or
 * token never reaches the terminal or a pipe. The one exception is `rawSecret` (`token --raw`).
 */
export class Output {
  readonly json: boolean;
  /** Colours for stdout. */
  readonly paint: Paint;
  /** Colours for stderr. */
  readonly paintErr: Paint;
  /** stderr is a terminal: progress may animate, prompts may be shown. */
  readonly interactive: boolean;
  private readonly streams: OutputStreams;
  private activeProgress: { clear(): void } | undefined;

  constructor(options: OutputOptions) {
    const env = options.env ?? process.env;
    this.streams = options.streams ?? { stdout: process.stdout, stderr: process.stderr };
    this.json = options.json;
    this.paint = makePaint(!this.json && colourWanted(this.streams.stdout, env, options.noColor ?? false));
    this.paintErr = makePaint(colourWanted(this.streams.stderr, env, options.noColor ?? false));
    this.interactive = this.streams.stderr.isTTY === true && env.TERM !== "dumb";
  }

  /** A line of the result (stdout). */
  out(text = ""): void {
    this.write("stdout", `${text}\n`);
  }

  /** A line for the person (stderr): status, hints, what is going on. */
  err(text = ""): void {
    this.write("stderr", `${text}\n`);
  }

  warn(text: string): void {
    this.err(`${this.paintErr.warn("warning:")} ${text}`);
  }

  /** `--json`: the whole result as one document. */
  data(value: unknown): void {
    this.write("stdout", `${JSON.stringify(value, jsonReplacer, 2)}\n`);
  }

  /** `--json` for streams (watch): one document per line. */
  record(value: unknown): void {
    this.write("stdout", `${JSON.stringify(value, jsonReplacer)}\n`);
  }

  /** Writes a secret the user asked for explicitly (`token --raw`); nothing else may use this. */
  rawSecret(text: string): void {
    this.clearProgress();
    this.streams.stdout.write(`${text}\n`);
  }

  table(columns: readonly Column[], rows: readonly (readonly string[])[]): void {
    const widths = columns.map((c, i) =>
      Math.max(visibleLength(c.header), ...rows.map((r) => visibleLength(r[i] ?? ""))),
    );
    const terminal = this.streams.stdout.isTTY ? this.streams.stdout.columns : undefined;
    if (terminal) {
      const total = widths.reduce((a, b) => a + b, 0) + 2 * (columns.length - 1);
      const flex = columns.findIndex((c) => c.flex);
      if (total > terminal && flex >= 0) widths[flex] = Math.max(12, widths[flex]! - (total - terminal));
    }
    const render = (cells: readonly string[], header: boolean) =>
      cells
        .map((cell, i) => {
          const width = widths[i]!;
          let text = cell;
          if (visibleLength(text) > width)
            text = `${[...text.replace(ANSI, "")].slice(0, width - 1).join("")}…`;
          const pad = " ".repeat(Math.max(0, width - visibleLength(text)));
          const last = i === cells.length - 1;
          const aligned = columns[i]?.right ? pad + text : last ? text : text + pad;
          return header ? this.paint.bold(aligned) : aligned;
        })
        .join("  ")
        .trimEnd();
    this.out(
      render(
        columns.map((c) => c.header),
        true,
      ),
    );
    for (const row of rows) this.out(render(row, false));
  }

  /** Shows `label` with a spinner on a terminal until stopped; prints nothing when stderr is piped. */
  progress(label: string): Progress {
    if (!this.interactive) return { update() {}, stop() {} };
    const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    let text = label;
    let frame = 0;
    const started = Date.now();
    const draw = () => {
      const seconds = Math.floor((Date.now() - started) / 1000);
      const elapsed = seconds >= 2 ? this.paintErr.dim(` ${seconds}s`) : "";
      this.streams.stderr.write(
        `\r\x1b[2K${this.paintErr.accent(frames[frame++ % frames.length]!)} ${redact(text)}${elapsed}`,
      );
    };
    const clear = () => this.streams.stderr.write("\r\x1b[2K");
    draw();
    const timer = setInterval(draw, 80);
    timer.unref();
    const handle = { clear };
    this.activeProgress = handle;
    return {
      update: (next) => {
        text = next;
      },
      stop: () => {
        clearInterval(timer);
        if (this.activeProgress === handle) {
          clear();
          this.activeProgress = undefined;
        }
      },
    };
  }

  /**
   * A progress bar (done, rate, ETA) for transfers and long listings: only on a terminal, never
   * with `--json` (scripts read stdout; a bar on stderr would still garble a captured log).
   */
  bar(options: Omit<ProgressBarOptions, "columns">): ProgressBar {
    if (!this.interactive || this.json) return { advance() {}, set() {}, stop() {} };
    const stderr = this.streams.stderr;
    const bar = progressBar((text) => stderr.write(text), { ...options, columns: stderr.columns ?? 80 });
    const handle = { clear: () => stderr.write("\r\x1b[2K") };
    this.activeProgress = handle;
    return {
      advance: (n) => bar.advance(n),
      set: (done, total) => bar.set(done, total),
      stop: () => {
        bar.stop();
        if (this.activeProgress === handle) this.activeProgress = undefined;
      },
    };
  }

  /** Prints an error the way the command ends: JSON on stdout with `--json`, text on stderr otherwise. */
  error(error: unknown): void {
    if (this.json) {
      this.data({ ok: false, error: errorJson(error) });
      return;
    }
    const p = this.paintErr;
    if (isM365MailError(error)) {
      const message =
        error.hint && error.message.endsWith(` — ${error.hint}`)
          ? error.message.slice(0, -` — ${error.hint}`.length)
          : error.message;
      this.err(`${p.fail("✗ error:")} ${message}`);
      // The packages' hints name library options; a CLI user is told the flag or variable instead.
      if (error.hint) this.err(`  ${p.bold("fix:")} ${hintFor(error, "cli")}`);
      this.err(p.dim(`  code: ${error.code}${error.serverCode ? ` (${error.serverCode})` : ""}`));
    } else {
      this.err(`${p.fail("✗ error:")} ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private clearProgress(): void {
    this.activeProgress?.clear();
  }

  private write(stream: keyof OutputStreams, text: string): void {
    this.clearProgress();
    this.streams[stream].write(redact(text));
  }
}

/** An error as `--json` shows it: code, message, hint, never a secret (M365MailError redacts). */
export function errorJson(error: unknown): Record<string, unknown> {
  if (isM365MailError(error)) {
    const json = { ...error.toJSON(), message: messageFor(error, "cli"), hint: hintFor(error, "cli") };
    return Object.fromEntries(Object.entries(json).filter(([, v]) => v !== undefined));
  }
  return { name: "Error", message: redact(error instanceof Error ? error.message : String(error)) };
}

// Dates as ISO strings, byte arrays never inline (a JSON dump of an attachment is no use to anyone).
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: value.byteLength };
  // IMAP MODSEQ values are 64-bit.
  if (typeof value === "bigint") return value.toString();
  // Buffer#toJSON runs before the replacer: { type: "Buffer", data: [...] }.
  if (
    value &&
    typeof value === "object" &&
    (value as { type?: unknown }).type === "Buffer" &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return { bytes: (value as { data: unknown[] }).data.length };
  }
  if (value instanceof Error) return errorJson(value);
  return value;
}
