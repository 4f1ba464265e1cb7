import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  expectNoSecrets,
  parseJson,
  runCli,
  SUPPORT,
  startTestEmulator,
  type TestEmulator,
} from "./helpers.js";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator(undefined, { dovecot: false });
});
afterAll(async () => {
  await emu?.stop();
});

const cli = (args: string[]) => runCli(args, { env: emu.env(), cwd: emu.home });
const ok = (result: CliResult) => {
  expectNoSecrets(result);
  expect(result.code, result.stderr + result.stdout).toBe(0);
  return parseJson(result);
};

const quoted = (name: string) => name.replace(/[\\"]/g, "\\$&");

/** Files a message from outside with these attachments (name → content) and answers its Graph id. */
async function arrives(attachments: [name: string, content: string][]): Promise<string> {
  const subject = `attachments ${randomBytes(4).toString("hex")}`;
  const parts = attachments.flatMap(([name, content]) => [
    "--XX",
    `Content-Type: application/octet-stream; name="${quoted(name)}"`,
    `Content-Disposition: attachment; filename="${quoted(name)}"`,
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from(content).toString("base64"),
  ]);
  const raw = [
    "From: Alice Wilber <alice@contoso.com>",
    `To: ${SUPPORT}`,
    `Subject: ${subject}`,
    `Message-ID: <${randomBytes(6).toString("hex")}@contoso.com>`,
    `Date: ${new Date().toUTCString()}`,
    "MIME-Version: 1.0",
    "Content-Type: multipart/mixed; boundary=XX",
    "",
    "--XX",
    "Content-Type: text/plain",
    "",
    "see attached",
    ...parts,
    "--XX--",
    "",
  ].join("\r\n");
  await emu.emulator.store.deliver(SUPPORT, "inbox", Buffer.from(raw));
  const [found] = ok(await cli(["search", "--json", "--subject", subject])).messages;
  expect(found, subject).toBeDefined();
  return found.id;
}

describe("download: attachment names from the sender", () => {
  it("names `..`, `.` and paths stay inside -o: nothing is written beside or above the folder", async () => {
    // Regression: ".." resolved to the parent of -o (its ".part" file landed beside it), "." to -o itself.
    const id = await arrives([
      ["..", "dots"],
      [".", "dot"],
      ["../escape.txt", "escape"],
      ["sub\\..\\win.txt", "backslashes"],
    ]);
    const outer = join(emu.home, "outer-dots");
    const dir = join(outer, "dl");
    await mkdir(outer);
    const result = ok(await cli(["download", id, "--json", "-o", dir]));
    expect(result.attachments.map((a: { savedTo: string }) => a.savedTo)).toEqual([
      join(dir, "attachment-1"),
      join(dir, "attachment-2"),
      join(dir, "escape.txt"),
      join(dir, "win.txt"),
    ]);
    expect(await readdir(outer)).toEqual(["dl"]);
    expect((await readdir(dir)).sort()).toEqual(["attachment-1", "attachment-2", "escape.txt", "win.txt"]);
    expect(await readFile(join(dir, "attachment-1"), "utf8")).toBe("dots");
    expect(await readFile(join(dir, "escape.txt"), "utf8")).toBe("escape");
  });

  it("two attachments with the same name are both kept: report.txt, report (2).txt", async () => {
    // Regression: the second overwrote the first.
    const id = await arrives([
      ["report.txt", "first"],
      ["report.txt", "second"],
      ["REPORT.txt", "third"],
    ]);
    const dir = join(emu.home, "dl-same-name");
    const result = ok(await cli(["download", id, "--json", "-o", dir]));
    expect(result.attachments.map((a: { savedTo: string }) => a.savedTo)).toEqual([
      join(dir, "report.txt"),
      join(dir, "report (2).txt"),
      join(dir, "REPORT (3).txt"),
    ]);
    expect(await readFile(join(dir, "report.txt"), "utf8")).toBe("first");
    expect(await readFile(join(dir, "report (2).txt"), "utf8")).toBe("second");
    expect(await readFile(join(dir, "REPORT (3).txt"), "utf8")).toBe("third");
    // Saving again replaces the same files (a re-run is not a pile of copies).
    ok(await cli(["download", id, "--json", "-o", dir]));
    expect((await readdir(dir)).sort()).toEqual(["REPORT (3).txt", "report (2).txt", "report.txt"]);
  });

  it("read --save-attachments names the files the same way", async () => {
    const id = await arrives([
      ["..", "dots"],
      ["report.txt", "first"],
      ["report.txt", "second"],
    ]);
    const dir = join(emu.home, "read-saved");
    const result = ok(await cli(["read", id, "--json", "--save-attachments", dir]));
    expect(result.message.attachments.map((a: { savedTo: string }) => a.savedTo)).toEqual([
      join(dir, "attachment-1"),
      join(dir, "report.txt"),
      join(dir, "report (2).txt"),
    ]);
    expect(await readFile(join(dir, "report (2).txt"), "utf8")).toBe("second");
  });

  it("--attachment that matches nothing is NOT_FOUND (exit 1), and --json says which attachments exist", async () => {
    // Regression: with --json, stdout stayed empty.
    const id = await arrives([
      ["invoice.pdf", "pdf"],
      ["notes.txt", "notes"],
    ]);
    const result = await cli([
      "download",
      id,
      "--json",
      "--attachment",
      "nope.txt",
      "-o",
      join(emu.home, "none"),
    ]);
    expect(result.code, result.stderr).toBe(1);
    const { ok: success, error } = parseJson(result);
    expect(success).toBe(false);
    expect(error.code).toBe("NOT_FOUND");
    expect(error.message).toContain('"nope.txt"');
    expect(error.message).toContain('"invoice.pdf", "notes.txt"');
    expect(error.hint).toContain("--list");
    const text = await cli(["download", id, "--attachment", "nope.txt"]);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain("code: NOT_FOUND");
  });
});
