import { describe, expect, it } from "vitest";
import { attachmentDisposition } from "../src/routes/content-disposition.js";

/** What a browser or curl --remote-header-name does with the RFC 8187 form. */
function decodedName(header: string): string {
  const encoded = /filename\*=UTF-8''([^;\s]+)/.exec(header)?.[1];
  if (!encoded) throw new Error(`no filename* in ${header}`);
  expect(encoded).toMatch(/^[A-Za-z0-9!#$&+\-.^_`|~%]+$/); // RFC 8187 attr-char or %XX only
  return decodeURIComponent(encoded);
}

describe("attachment download names", () => {
  it("a long name with an emoji across the 150-character cut is served, not a 500", () => {
    const name = `${"a".repeat(149)}😀.pdf`;
    const header = attachmentDisposition(name);
    expect(decodedName(header)).toBe(`${"a".repeat(149)}😀`);
  });

  it("quotes, parentheses and apostrophes survive in filename* and cannot end the parameter", () => {
    const name = `Bob's "report" (final)*.pdf`;
    const header = attachmentDisposition(name);
    expect(decodedName(header)).toBe(name);
    expect(header).toContain('filename="Bob\'s _report_ (final)*.pdf"');
  });

  it("a broken name (a lone surrogate) and path separators give a safe name", () => {
    const header = attachmentDisposition("..\\..\\evil\ud800.txt");
    expect(decodedName(header)).toBe("..\\..\\evil\ufffd.txt");
    expect(header).toContain('filename=".._.._evil_.txt"');
    expect(attachmentDisposition("")).toContain('filename="attachment"');
  });
});
