import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Output } from "../src/output.js";
import { progressBar } from "../src/progress-bar.js";

function stream(isTTY: boolean) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 100;
  let text = "";
  s.on("data", (chunk) => {
    text += chunk;
  });
  return { s, text: () => text };
}

describe("progress bar", () => {
  it("shows done/total, percentage, rate and ETA from the clock", () => {
    let now = 0;
    const writes: string[] = [];
    const bar = progressBar((t) => writes.push(t), {
      label: "big.bin",
      unit: "bytes",
      total: 10 * 1024 * 1024,
      columns: 100,
      now: () => now,
    });
    now = 2000;
    bar.set(4 * 1024 * 1024);
    // 4 MB in 2 s = 2 MB/s; 6 MB left = 3 s.
    expect(bar.line()).toBe("big.bin [############··················] 40% 4.0 MB/10.0 MB 2.0 MB/s ETA 3s");
    expect(writes.at(-1)).toContain("40%");
    bar.stop();
    expect(writes.at(-1)).toBe("\r\x1b[2K");
  });

  it("without a total: the count and the rate", () => {
    let now = 0;
    const bar = progressBar(() => {}, { label: "listing", unit: "items", now: () => now });
    now = 4000;
    bar.advance(200);
    expect(bar.line()).toBe("listing 200 50/s");
  });

  it("redraws at most every 100 ms", () => {
    let now = 0;
    const writes: string[] = [];
    const bar = progressBar((t) => writes.push(t), { label: "x", unit: "bytes", total: 100, now: () => now });
    for (let i = 0; i < 50; i++) bar.advance(1);
    expect(writes.length).toBe(1);
    now = 150;
    bar.advance(1);
    expect(writes.length).toBe(2);
  });

  it("only on a terminal, never with --json", () => {
    for (const [tty, json, expected] of [
      [true, false, true],
      [false, false, false],
      [true, true, false],
    ] as const) {
      const err = stream(tty);
      const out = new Output({
        json,
        env: { TERM: "xterm" },
        streams: { stdout: stream(tty).s, stderr: err.s },
      });
      const bar = out.bar({ label: "upload", unit: "bytes", total: 1000 });
      bar.set(500);
      bar.stop();
      expect(err.text().includes("50%"), `tty=${tty} json=${json}`).toBe(expected);
    }
  });
});
