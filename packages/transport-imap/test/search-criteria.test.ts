// imapflow's own compiler: what client.search() sends for a query object.
import type { ImapFlow } from "imapflow";
import { searchCompiler } from "imapflow/lib/search-compiler.js";
import { describe, expect, it } from "vitest";
import { searchCriteria } from "../src/search-criteria.js";

/** The SEARCH arguments imapflow sends for a query, as IMAP text. */
function imapSearch(query: Parameters<typeof searchCriteria>[0]): string {
  // The compiler reads only these of the connection (CHARSET and extensions).
  const connection = { enabled: new Set(["UTF8=ACCEPT"]), capabilities: new Map() } as unknown as ImapFlow;
  const render = (attributes: unknown[]): string =>
    attributes
      .map((a) => (Array.isArray(a) ? `(${render(a)})` : String((a as { value: unknown }).value)))
      .join(" ");
  return render(searchCompiler(connection, searchCriteria(query)));
}

describe("searchCriteria: several words are several keys, ANDed (as Graph's KQL)", () => {
  it("one key per word in every field, never one phrase", () => {
    // Regression: `search dup names` sent TEXT "dup names" and missed a message saying "names … dup".
    expect(imapSearch({ search: { text: "dup names" } })).toBe("TEXT dup TEXT names");
    expect(imapSearch({ search: { text: "a b c", subject: "q1 report", from: "alice" } })).toBe(
      "TEXT a (TEXT b (TEXT c (FROM alice (SUBJECT q1 SUBJECT report))))",
    );
  });

  it("each word of `to` is To or Cc, and the words are still ANDed", () => {
    expect(imapSearch({ search: { to: "bob" } })).toBe("OR TO bob CC bob");
    expect(imapSearch({ unreadOnly: true, search: { to: "bob smith" } })).toBe(
      "UNSEEN (OR TO bob CC bob NOT NOT OR TO smith CC smith)",
    );
  });

  it("quotes are no phrase marks (dropped, as for Graph); nothing to look for is ALL", () => {
    expect(imapSearch({ search: { text: '"quarterly report"' } })).toBe("TEXT quarterly TEXT report");
    expect(imapSearch({ search: { text: "  " } })).toBe("ALL");
  });
});
