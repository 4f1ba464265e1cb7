import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  expectNoSecrets,
  HAS_DOVECOT,
  parseJson,
  runCli,
  SUPPORT,
  startTestEmulator,
  type TestEmulator,
} from "./helpers.js";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  await emu?.stop();
});

const cli = (args: string[]) => runCli(args, { env: emu.env(), cwd: emu.home });
const tag = () => randomBytes(4).toString("hex");
const ok = (result: CliResult) => {
  expectNoSecrets(result);
  expect(result.code, result.stderr + result.stdout).toBe(0);
  return parseJson(result);
};

interface Listed {
  id: string;
  subject: string;
}

/** Files a message from outside (as mail arriving) into the signed-in user's inbox. */
async function arrives(subject: string, text: string): Promise<void> {
  const raw = [
    "From: Alice Wilber <alice@contoso.com>",
    `To: ${SUPPORT}`,
    `Subject: ${subject}`,
    `Message-ID: <${tag()}${tag()}@contoso.com>`,
    `Date: ${new Date().toUTCString()}`,
    "",
    text,
    "",
  ].join("\r\n");
  await emu.emulator.store.deliver(SUPPORT, "inbox", Buffer.from(raw));
}

const VIAS = ["graph", ...(HAS_DOVECOT ? ["imap"] : [])];

describe.each(VIAS)("search over %s", (via) => {
  it("takes several words, each must appear, in any order (not the phrase)", async () => {
    // Regression: `search dup names` was refused (one argument at most), and IMAP searched the phrase.
    const dup = `dup${tag()}`;
    const subject = `words ${tag()}`;
    await arrives(subject, `the names of the ${dup} files`);
    await arrives(`other ${tag()}`, `only ${dup} here`);
    const found = ok(await cli(["search", "--json", "--via", via, "names", dup]));
    expect(found.search).toEqual({ text: `names ${dup}` });
    expect(found.messages.map((m: Listed) => m.subject)).toEqual([subject]);
  });
});

const listed = async (via: string, folder: string, subject: string): Promise<Listed[]> =>
  (
    ok(await cli(["list", "--json", "--via", via, "--folder", folder, "-n", "50"])).messages as Listed[]
  ).filter((m) => m.subject === subject);

describe.each(VIAS)("delete over %s, as Outlook's Delete key", (via) => {
  it("prints the id in Deleted Items; deleting from Deleted Items removes the message for good", async () => {
    // Regressions: over IMAP the new id was not printed; over Graph a message in Deleted Items was
    // "moved" there again instead of being deleted.
    const subject = `delete ${via} ${tag()}`;
    await arrives(subject, "delete me twice");
    const [message] = await listed(via, "inbox", subject);
    const first = await cli(["delete", message!.id, "--via", via]);
    expect(first.code, first.stderr).toBe(0);
    const [inTrash] = await listed(via, "trash", subject);
    expect(inTrash).toBeDefined();
    expect(first.stdout.trim()).toBe(`✓ moved to Deleted Items: ${inTrash!.id}`);

    const second = ok(await cli(["delete", inTrash!.id, "--json", "--via", via]));
    expect(second.deleted).toEqual([{ id: inTrash!.id, wasInDeletedItems: true }]);
    expect(await listed(via, "trash", subject)).toEqual([]);
    expect(await listed(via, "inbox", subject)).toEqual([]);
  });

  it("--json names the id in Deleted Items (movedTo)", async () => {
    const subject = `delete json ${via} ${tag()}`;
    await arrives(subject, "delete me");
    const [message] = await listed(via, "inbox", subject);
    const result = ok(await cli(["delete", message!.id, "--json", "--via", via]));
    const [inTrash] = await listed(via, "trash", subject);
    expect(result.deleted).toEqual([{ id: message!.id, movedTo: inTrash!.id }]);
  });
});
