import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toKql } from "../src/messages.js";
import { type EmulatorFixture, SHARED, SUPPORT, startGraphEmulator } from "./emulator-helpers.js";

let fixture: EmulatorFixture;
beforeAll(async () => {
  fixture = await startGraphEmulator();
});
afterAll(async () => {
  await fixture?.stop();
});

const tag = () => randomBytes(4).toString("hex");

describe("toKql", () => {
  it("`to` is To or Cc, as the core contract says and IMAP does (regression: it was `to:` alone)", () => {
    expect(toKql({ to: "alice" })).toBe("(to:alice OR cc:alice)");
  });

  it("quotes a value KQL would read as syntax: operators, colons, parentheses, wildcards, a leading -", () => {
    expect(toKql({ text: "a OR b", subject: "x:y (z) -w q*" })).toBe(
      'subject:"x:y" subject:"(z)" subject:"-w" subject:"q*" a "OR" b',
    );
    expect(toKql({ from: "not", to: "AND" })).toBe('from:"not" (to:"AND" OR cc:"AND")');
  });

  it("drops double quotes and backslashes (they cannot be searched for) instead of letting them end a phrase", () => {
    expect(toKql({ subject: 'x" OR from:"evil\\' })).toBe(
      'subject:x subject:"OR" subject:"from:" subject:evil',
    );
  });

  it("leaves plain words and addresses as they are", () => {
    expect(toKql({ from: "alice@contoso.com", subject: "Q3 re-forecast" })).toBe(
      "from:alice@contoso.com subject:Q3 subject:re-forecast",
    );
  });
});

describe("search over Graph against the emulator", () => {
  it("finds a message by its Cc recipient", async () => {
    const t = fixture.transport();
    const subject = `cc search ${tag()}`;
    await t.send({ to: SUPPORT, cc: SHARED, subject, text: "copy" });
    const found = [];
    for await (const m of t.listMessages({ search: { to: "shared", subject } })) found.push(m.subject);
    expect(found).toEqual([subject]);
    const byAddress = [];
    for await (const m of t.listMessages({ search: { to: SHARED, subject } })) byAddress.push(m.subject);
    expect(byAddress).toEqual([subject]);
  });

  it("treats quotes, colons and operators in a value as literal text, not as query syntax", async () => {
    const t = fixture.transport();
    const word = `lit${tag()}`;
    await t.send({ to: SUPPORT, subject: `${word} plain`, text: "x" });
    await t.send({ to: SUPPORT, subject: `${word} OR from: evil`, text: "x" });
    const search = async (subject: string) => {
      const out = [];
      for await (const m of t.listMessages({ search: { subject } })) out.push(m.subject);
      return out;
    };
    // Unescaped, `OR` would widen the query to every message with the word "plain" or from "evil".
    expect(await search(`${word} OR from:evil`)).toEqual([`${word} OR from: evil`]);
    expect(await search(`${word}" OR "evil`)).toEqual([`${word} OR from: evil`]);
    expect(await search(`NOT ${word}`)).toEqual([]);
  });
});
