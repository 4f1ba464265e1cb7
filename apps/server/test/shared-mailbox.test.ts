import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  startTestEmulator,
  startTestServer,
  subjectsIn,
  type TestEmulator,
  USER,
  waitFor,
} from "./helpers.js";

const SHARED = "shared@contoso.com";
let emu: TestEmulator;
let srv: Awaited<ReturnType<typeof startTestServer>>;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  emu = await startTestEmulator();
  // support@ signs in; the server works on the shared mailbox it is a delegate of.
  srv = await startTestServer(emu.emulator, { M365_MAILBOX: SHARED });
  api = client(srv.url, srv.key);
});
afterAll(async () => {
  await srv?.stop();
  await emu?.stop();
});

describe("M365_MAILBOX: the server works on a shared mailbox", () => {
  it("sends from it by default and reads its mail, not the signed-in user's", async () => {
    const me = await (await api("/v1/me")).json();
    expect(me).toMatchObject({ username: USER, mailbox: SHARED });

    const subject = `shared ${randomBytes(4).toString("hex")}`;
    // Mail to the shared mailbox, sent from the shared mailbox (the default From).
    const queued = await api("/v1/messages", {
      method: "POST",
      body: JSON.stringify({ to: SHARED, subject, text: "hi" }),
    });
    expect(queued.status).toBe(202);
    const listed = await waitFor(
      async () => {
        const list = (await (await api(`/v1/search?${new URLSearchParams({ subject })}`)).json()) as {
          from: { address: string };
        }[];
        return list.length > 0 ? list : undefined;
      },
      20_000,
      "the message in the shared mailbox's Inbox",
    );
    expect(listed[0]!.from.address).toBe(SHARED);
    // Filed in the shared mailbox's Sent Items; nothing in the signed-in user's own folders.
    expect(await subjectsIn(emu.dataDir, SHARED, "sentitems")).toContain(subject);
    expect(await subjectsIn(emu.dataDir, USER, "inbox")).not.toContain(subject);
    expect(await subjectsIn(emu.dataDir, USER, "sentitems")).not.toContain(subject);
  }, 60_000);
});
