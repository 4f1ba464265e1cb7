/**
 * A small, namespace-aware XML reader for the SOAP and WSDL documents of federated sign-in (AD FS MEX,
 * WS-Trust answers and faults). It resolves prefixes to namespace URIs — the only thing these
 * documents need that a string search cannot do reliably, since AD FS reuses the prefix `sp` for two
 * namespaces. No DTDs, no entities beyond the five predefined ones and character references: such
 * documents are refused, not half-read. It never re-serialises: to keep signed bytes (a SAML
 * assertion), cut them out of the original text with `start`/`end`.
 */
export interface XmlElement {
  /** Qualified name as written, e.g. `wsdl:port`. */
  readonly name: string;
  readonly local: string;
  /** Namespace URI ("" when none). */
  readonly ns: string;
  /** Attributes by qualified name as written (`wsu:Id`, `binding`). */
  readonly attributes: Readonly<Record<string, string>>;
  /** Attributes by `{namespace}local` (or `local` when unprefixed). */
  readonly attributesNs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  /** Concatenated text directly inside this element (not of its children). */
  text: string;
  /** Offsets in the source of `<` of the start tag and just after the end tag. */
  readonly start: number;
  end: number;
}

export class XmlParseError extends Error {
  override readonly name = "XmlParseError";
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref: string) => {
    if (ref.startsWith("#x")) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith("#")) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    const value = ENTITIES[ref];
    if (value === undefined) throw new XmlParseError(`unknown entity ${whole}`);
    return value;
  });
}

/** Escapes text for element content and attribute values (`& < > " '`). */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const NAME = /^[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?$/;
const ATTRIBUTE = /([A-Za-z_][\w.\-:]*)\s*=\s*("([^"]*)"|'([^']*)')/gy;

/** Parses a whole document and returns its root element. Throws XmlParseError on malformed input. */
export function parseXml(source: string): XmlElement {
  const stack: Array<{ element: XmlElement; scope: Map<string, string> }> = [];
  let root: XmlElement | undefined;
  let i = source.charCodeAt(0) === 0xfeff ? 1 : 0;
  const rootScope = new Map<string, string>([["xml", "http://www.w3.org/XML/1998/namespace"]]);

  while (i < source.length) {
    const lt = source.indexOf("<", i);
    const textEnd = lt === -1 ? source.length : lt;
    if (textEnd > i) {
      const text = source.slice(i, textEnd);
      const top = stack[stack.length - 1];
      if (top) top.element.text += decode(text);
      else if (text.trim() !== "") throw new XmlParseError("text outside the root element");
    }
    if (lt === -1) break;
    if (source.startsWith("<!--", lt)) {
      const close = source.indexOf("-->", lt + 4);
      if (close === -1) throw new XmlParseError("unterminated comment");
      i = close + 3;
    } else if (source.startsWith("<![CDATA[", lt)) {
      const close = source.indexOf("]]>", lt + 9);
      if (close === -1) throw new XmlParseError("unterminated CDATA section");
      const top = stack[stack.length - 1];
      if (!top) throw new XmlParseError("CDATA outside the root element");
      top.element.text += source.slice(lt + 9, close);
      i = close + 3;
    } else if (source.startsWith("<?", lt)) {
      const close = source.indexOf("?>", lt + 2);
      if (close === -1) throw new XmlParseError("unterminated processing instruction");
      i = close + 2;
    } else if (source.startsWith("<!", lt)) {
      throw new XmlParseError("DTDs are not accepted");
    } else if (source[lt + 1] === "/") {
      const close = source.indexOf(">", lt);
      if (close === -1) throw new XmlParseError("unterminated end tag");
      const name = source.slice(lt + 2, close).trim();
      const top = stack.pop();
      if (!top || top.element.name !== name) {
        throw new XmlParseError(`end tag </${name}> does not match <${top?.element.name ?? "(none)"}>`);
      }
      top.element.end = close + 1;
      i = close + 1;
    } else {
      const nameMatch = /^<([^\s/>]+)/.exec(source.slice(lt, lt + 300));
      if (!nameMatch || !NAME.test(nameMatch[1]!)) throw new XmlParseError(`bad start tag at ${lt}`);
      const name = nameMatch[1]!;
      let p = lt + 1 + name.length;
      const raw: Array<[string, string]> = [];
      for (;;) {
        while (p < source.length && /\s/.test(source[p]!)) p++;
        if (source[p] === ">" || source.startsWith("/>", p)) break;
        ATTRIBUTE.lastIndex = p;
        const m = ATTRIBUTE.exec(source);
        if (!m) throw new XmlParseError(`bad attribute in <${name}> at ${p}`);
        raw.push([m[1]!, decode(m[3] ?? m[4] ?? "")]);
        p = ATTRIBUTE.lastIndex;
      }
      const selfClosing = source.startsWith("/>", p);
      const tagEnd = p + (selfClosing ? 2 : 1);
      const parentScope = stack[stack.length - 1]?.scope ?? rootScope;
      let scope = parentScope;
      for (const [key, value] of raw) {
        if (key === "xmlns" || key.startsWith("xmlns:")) {
          if (scope === parentScope) scope = new Map(parentScope);
          scope.set(key === "xmlns" ? "" : key.slice(6), value);
        }
      }
      const resolve = (qname: string, isAttribute: boolean): { ns: string; local: string } => {
        const colon = qname.indexOf(":");
        if (colon === -1) return { ns: isAttribute ? "" : (scope.get("") ?? ""), local: qname };
        const prefix = qname.slice(0, colon);
        const ns = scope.get(prefix);
        if (ns === undefined) throw new XmlParseError(`undeclared namespace prefix "${prefix}"`);
        return { ns, local: qname.slice(colon + 1) };
      };
      const attributes: Record<string, string> = {};
      const attributesNs: Record<string, string> = {};
      for (const [key, value] of raw) {
        attributes[key] = value;
        if (key === "xmlns" || key.startsWith("xmlns:")) continue;
        const { ns, local } = resolve(key, true);
        attributesNs[ns ? `{${ns}}${local}` : local] = value;
      }
      const { ns, local } = resolve(name, false);
      const element: XmlElement = {
        name,
        local,
        ns,
        attributes,
        attributesNs,
        children: [],
        text: "",
        start: lt,
        end: tagEnd,
      };
      const parent = stack[stack.length - 1];
      if (parent) parent.element.children.push(element);
      else if (root) throw new XmlParseError("more than one root element");
      else root = element;
      if (!selfClosing) stack.push({ element, scope });
      i = tagEnd;
    }
  }
  if (stack.length > 0) throw new XmlParseError(`<${stack[stack.length - 1]!.element.name}> is not closed`);
  if (!root) throw new XmlParseError("no root element");
  return root;
}

/** The first child with this namespace and local name. */
export function xmlChild(element: XmlElement | undefined, ns: string, local: string): XmlElement | undefined {
  return element?.children.find((c) => c.ns === ns && c.local === local);
}

/** Every child with this namespace and local name. */
export function xmlChildren(element: XmlElement | undefined, ns: string, local: string): XmlElement[] {
  return element ? element.children.filter((c) => c.ns === ns && c.local === local) : [];
}

/** Follows a path of `[ns, local]` steps from `element`, taking the first match at each step. */
export function xmlPath(
  element: XmlElement | undefined,
  ...steps: ReadonlyArray<readonly [string, string]>
): XmlElement | undefined {
  let current = element;
  for (const [ns, local] of steps) current = xmlChild(current, ns, local);
  return current;
}

/** Every descendant (depth first) with this namespace and local name. */
export function xmlDescendants(element: XmlElement | undefined, ns: string, local: string): XmlElement[] {
  const found: XmlElement[] = [];
  const walk = (e: XmlElement) => {
    for (const c of e.children) {
      if (c.ns === ns && c.local === local) found.push(c);
      walk(c);
    }
  };
  if (element) walk(element);
  return found;
}
