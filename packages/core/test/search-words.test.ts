import { describe, expect, it } from "vitest";
import { searchWords } from "../src/index.js";

describe("searchWords: the words of a MessageSearch field, the same for every transport", () => {
  it("splits at white space; quotes and backslashes are no phrase marks", () => {
    expect(searchWords(" march\tinvoice\n")).toEqual(["march", "invoice"]);
    expect(searchWords('"quarterly report"')).toEqual(["quarterly", "report"]);
    expect(searchWords("a\\b")).toEqual(["a", "b"]);
    expect(searchWords(undefined)).toEqual([]);
    expect(searchWords("  ")).toEqual([]);
  });
});
