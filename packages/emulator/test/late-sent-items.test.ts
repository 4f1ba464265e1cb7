import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFaultRegistry, validateFaultSpec } from "../src/faults.js";
import { createMailStore } from "../src/store/index.js";
import { withLateSentItems } from "../src/store/late-sent-items.js";

const UPN = "support@contoso.com";
const mime = (subject: string) =>
  Buffer.from(`Subject: ${subject}\r\nMessage-ID: <${subject}@x>\r\n\r\nbody\r\n`);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "emulator-late-sent-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("the lateSentItems fault", () => {
  it("files the next Sent Items copy late, or never; other folders and later copies are untouched", async () => {
    const faults = createFaultRegistry();
    const store = createMailStore({ root });
    const filing = withLateSentItems(store, faults, "graph");
    const count = async (folder: string) => (await store.list(UPN, folder).catch(() => [])).length;

    faults.arm({ target: "sentitems", kind: "lateSentItems", delayMs: 400 });
    faults.arm({ target: "sentitems", kind: "lateSentItems", path: "graph:" });
    // A request fault for every part does not touch filing.
    faults.arm({ target: "*", kind: "status500" });

    await filing.deliver(UPN, "sentitems", mime("late"));
    await filing.deliver(UPN, "sentitems", mime("never"));
    await filing.deliver(UPN, "inbox", mime("inbox"));
    expect(await count("sentitems")).toBe(0);
    expect(await count("inbox")).toBe(1);
    await new Promise((r) => setTimeout(r, 700));
    expect(await count("sentitems")).toBe(1);
    await filing.deliver(UPN, "sentitems", mime("on time"));
    expect(await count("sentitems")).toBe(2);
    expect(faults.list().map((f) => f.kind)).toEqual(["status500"]);
  });

  it("is refused with any other target, and other kinds with target sentitems", () => {
    expect(() => validateFaultSpec({ target: "graph", kind: "lateSentItems" })).toThrow(/sentitems/);
    expect(() => validateFaultSpec({ target: "sentitems", kind: "status500" })).toThrow(/sentitems/);
  });
});
