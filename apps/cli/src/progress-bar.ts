import { formatBytes } from "./commands/send.js";

export interface ProgressBarOptions {
  label: string;
  /** What is counted: bytes (shown as KB/MB, with a rate) or items (messages). */
  unit: "bytes" | "items";
  /** Known total: a bar, a percentage and an ETA; unknown: the count and the rate only. */
  total?: number;
  /** Terminal width. @default 80 */
  columns?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface ProgressBar {
  /** Adds `amount` to what is done. */
  advance(amount: number): void;
  /** Sets what is done (e.g. a transport's own count). */
  set(done: number, total?: number): void;
  stop(): void;
}

const REDRAW_MS = 100;

/**
 * One line on a terminal's stderr: `label [#####·····] 45% 12.3 MB/27.0 MB 3.1 MB/s ETA 5s`. The rate
 * is taken over the whole transfer so far (steady for chunked uploads that report in 4 MB steps).
 */
export function progressBar(
  write: (text: string) => void,
  options: ProgressBarOptions,
): ProgressBar & { line(): string } {
  const now = options.now ?? Date.now;
  const started = now();
  let done = 0;
  let total = options.total;
  let drawn = Number.NEGATIVE_INFINITY;
  const amount = (n: number) => (options.unit === "bytes" ? formatBytes(n) : String(n));
  const line = (): string => {
    const seconds = Math.max((now() - started) / 1000, 0.001);
    const rate = done / seconds;
    const rateText = options.unit === "bytes" ? `${formatBytes(Math.round(rate))}/s` : `${rate.toFixed(0)}/s`;
    if (total === undefined || total <= 0) return `${options.label} ${amount(done)} ${rateText}`;
    const fraction = Math.min(1, done / total);
    const width = Math.max(10, Math.min(30, (options.columns ?? 80) - options.label.length - 50));
    const filled = Math.round(fraction * width);
    const remaining = rate > 0 ? Math.max(0, (total - done) / rate) : Number.POSITIVE_INFINITY;
    const eta = Number.isFinite(remaining) ? `ETA ${formatDuration(remaining)}` : "ETA --";
    return `${options.label} [${"#".repeat(filled)}${"·".repeat(width - filled)}] ${Math.floor(fraction * 100)}% ${amount(done)}/${amount(total)} ${rateText} ${eta}`;
  };
  const draw = (force = false) => {
    const t = now();
    if (!force && t - drawn < REDRAW_MS) return;
    drawn = t;
    write(`\r\x1b[2K${line()}`);
  };
  return {
    advance(n) {
      done += n;
      draw();
    },
    set(value, newTotal) {
      done = value;
      if (newTotal !== undefined) total = newTotal;
      draw();
    },
    stop() {
      write("\r\x1b[2K");
    },
    line,
  };
}

export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
