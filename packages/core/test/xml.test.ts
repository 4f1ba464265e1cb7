import { describe, expect, it } from "vitest";
import { redact } from "../src/redact.js";
import { escapeXml, parseXml, XmlParseError, xmlChild, xmlDescendants, xmlPath } from "../src/xml.js";

describe("parseXml", () => {
  it("resolves prefixes per scope: the same prefix can name two namespaces", () => {
    const root = parseXml(
      `<?xml version="1.0"?><a:root xmlns:a="urn:a"><sp:x xmlns:sp="urn:one"/><sp:x xmlns:sp="urn:two"><b attr="1" a:q="2">t&amp;&lt;&#x41;</b></sp:x></a:root>`,
    );
    expect(root.ns).toBe("urn:a");
    expect(root.children.map((c) => c.ns)).toEqual(["urn:one", "urn:two"]);
    const b = xmlPath(root, ["urn:two", "x"], ["", "b"]);
    expect(b?.text).toBe("t&<A");
    expect(b?.attributesNs).toEqual({ attr: "1", "{urn:a}q": "2" });
    expect(xmlChild(root, "urn:one", "x")?.children).toEqual([]);
    expect(xmlDescendants(root, "", "b")).toHaveLength(1);
  });

  it("gives each element's offsets in the source, so signed bytes can be cut out untouched", () => {
    const source = `<r xmlns="urn:r"><inner  a = 'x' >keep   as  is</inner></r>`;
    const inner = parseXml(source).children[0]!;
    expect(source.slice(inner.start, inner.end)).toBe(`<inner  a = 'x' >keep   as  is</inner>`);
  });

  it("refuses DTDs, undeclared prefixes, unknown entities and mismatched tags", () => {
    for (const bad of [
      `<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>`,
      `<p:r/>`,
      `<r>&nbsp;</r>`,
      `<r><a></b></r>`,
      `<r>`,
      `<r/><r/>`,
    ]) {
      expect(() => parseXml(bad), bad).toThrow(XmlParseError);
    }
  });

  it("escapeXml escapes the five special characters", () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
  });
});

describe("redact and SOAP", () => {
  it("removes a UsernameToken password whatever its prefix", () => {
    expect(redact("<wsse:Password>s3cr3t-but-short</wsse:Password><o:Password Type='t'>x</o:Password>")).toBe(
      "<wsse:Password>[REDACTED]</wsse:Password><o:Password Type='t'>[REDACTED]</o:Password>",
    );
  });
});
