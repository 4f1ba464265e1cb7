import { describe, expect, it } from "vitest";
import { consoleLogger } from "../src/index.js";

describe("consoleLogger", () => {
  it("writes one line per event: CR LF and other control characters a client sent are escaped", () => {
    const lines: string[] = [];
    const log = consoleLogger("info", (line) => lines.push(line));
    // An IMAP literal may carry CR LF in a login name; it must not forge a log line of its own.
    log.info(
      "login refused for x\r\n2026-12-04T15:00:00.000Z warn [bridge] forged\u0000\u2028 from 127.0.0.1",
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\r\n\u0000\u2028]/);
    expect(lines[0]).toContain("x\\r\\n2026-12-04T15:00:00.000Z warn [bridge] forged\\u0000\\u2028 from");
  });
});
