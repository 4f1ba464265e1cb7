import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImapTransport } from "../src/index.js";
import {
  collect,
  dovecotMissing,
  emulatorProvider,
  type ImapEmulator,
  startImapEmulator,
  transportFor,
} from "./emulator-helpers.js";

const SUPPORT = "support@contoso.com";

describe.skipIf(dovecotMissing)("listing a whole folder (emulator + Dovecot)", () => {
  let env: ImapEmulator;
  let imap: ImapTransport;
  beforeAll(async () => {
    env = await startImapEmulator();
    imap = transportFor(env, emulatorProvider(env.emulator), { fetchBatchSize: 3 });
  });
  afterAll(async () => {
    await imap?.close();
    await env?.cleanup();
  });

  const fill = async (count: number) => {
    const folder = `Listing ${randomBytes(4).toString("hex")}`;
    await env.store.createFolder(SUPPORT, folder);
    for (let i = 0; i < count; i++) {
      await env.store.deliver(SUPPORT, folder, Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), {
        seen: true,
      });
    }
    return folder;
  };

  it("lists every message once, newest first, with sources that match their sizes", async () => {
    const folder = await fill(8);
    const all = await collect(imap.listMessages({ folder, includeSource: true }));
    expect(all.map((m) => m.subject)).toEqual(["m7", "m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
    for (const m of all) expect(m.source?.length).toBe(m.size);
    expect((await collect(imap.listMessages({ folder, limit: 4 }))).map((m) => m.subject)).toEqual([
      "m7",
      "m6",
      "m5",
      "m4",
    ]);
  });

  it("neither skips nor repeats a message when others are expunged and mail arrives between batches", async () => {
    const folder = await fill(12);
    const iterator = imap.listMessages({ folder })[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.subject).toBe("m11");
    // While the listing is under way: m10 (already fetched), m4 and m1 (not yet) are expunged, which
    // renumbers everything above them, and new mail arrives on top.
    const ids = new Map((await collect(imap.listMessages({ folder }))).map((m) => [m.subject, m.id]));
    for (const gone of ["m10", "m4", "m1"]) await imap.deleteMessage(ids.get(gone)!, { permanent: true });
    await env.store.deliver(SUPPORT, folder, Buffer.from("Subject: m12\r\n\r\nlate\r\n"), { seen: true });
    const rest: string[] = [];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      rest.push(next.value.subject);
    }
    // m10 had been fetched before it was expunged; m12 arrived after the listing started.
    expect(["m11", ...rest]).toEqual(["m11", "m10", "m9", "m8", "m7", "m6", "m5", "m3", "m2", "m0"]);
    expect((await collect(imap.listMessages({ folder }))).map((m) => m.subject)).toEqual([
      "m12",
      "m11",
      "m9",
      "m8",
      "m7",
      "m6",
      "m5",
      "m3",
      "m2",
      "m0",
    ]);
  });
});
