import { readdirSync, readFileSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  ERROR_CODES,
  type ErrorCode,
  type HintAudience,
  hintFor,
  M365MailError,
  messageFor,
  speaksLibrary,
} from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, exitCodeFor } from "../src/exit-codes.js";
import { parseJson, runCli, startTestEmulator, type TestEmulator } from "./helpers.js";

const ROOT = join(import.meta.dirname, "..", "..", "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

interface FoundHint {
  where: string;
  code: ErrorCode | undefined;
  hint: string;
}

/**
 * Every hint written in the packages' and apps' sources, with the error code of the
 * `new M365MailError("CODE", …, { hint })` it belongs to when the code is written next to it.
 * Template parts (`${…}`) become "X".
 */
function hintsInSources(): FoundHint[] {
  const dirs = [
    ...readdirSync(join(ROOT, "packages")).map((p) => join(ROOT, "packages", p, "src")),
    ...readdirSync(join(ROOT, "apps")).map((p) => join(ROOT, "apps", p, "src")),
  ].filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory());
  const found: FoundHint[] = [];
  const pattern = /hint:\s*(`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/g;
  for (const file of dirs.flatMap(sourceFiles)) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(pattern)) {
      const literal = match[1]!;
      const hint = literal
        .slice(1, -1)
        .replace(/\$\{[\s\S]*?\}/g, "X")
        .replace(/\\(.)/g, "$1");
      const before = text.slice(Math.max(0, match.index! - 600), match.index);
      const codes = [...before.matchAll(/M365MailError\(\s*"([A-Z_]+)"/g)];
      const code = codes.at(-1)?.[1] as ErrorCode | undefined;
      found.push({
        where: `${file.slice(ROOT.length + 1)}`,
        code: code && code in ERROR_CODES ? code : undefined,
        hint,
      });
    }
  }
  return found;
}

const AUDIENCES: readonly HintAudience[] = ["library", "cli", "server"];

describe("hints speak the interface's language", () => {
  const hints = hintsInSources();

  it("finds the hints of every package (the scan itself works)", () => {
    expect(hints.length).toBeGreaterThan(100);
    expect(hints.some((h) => h.hint.includes("the proxy option"))).toBe(true);
    expect(hints.some((h) => h.hint.includes("mailbox.transports()"))).toBe(true);
  });

  // Every error code × interface: each hint written for that code (and the code's generic error)
  // renders without a library option for the CLI and the server, and unchanged for the library.
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    for (const audience of AUDIENCES) {
      it(`${code} × ${audience}`, () => {
        const forCode = hints.filter((h) => h.code === code || h.code === undefined);
        for (const { hint, where } of forCode) {
          const error = new M365MailError(code, "something failed", { hint });
          const rendered = hintFor(error, audience)!;
          if (audience === "library") expect(rendered).toBe(error.hint);
          else {
            expect(speaksLibrary(rendered), `${where}: "${hint}" → "${rendered}"`).toBe(false);
            expect(messageFor(error, audience)).toContain(rendered);
            expect(speaksLibrary(messageFor(error, audience))).toBe(false);
          }
        }
      });
    }
  }

  it("names the flag or variable for the settings users meet most", () => {
    const cases: [string, string, string][] = [
      [
        "Trust the server's CA with the ca option (the emulator prints its caPath), or fix the proxy's certificate.",
        "--ca-file (M365_CA_FILE)",
        "M365_CA_FILE",
      ],
      [
        "Check the network path, proxy and TLS trust (the `ca` option) for the Graph host.",
        "--ca-file",
        "M365_CA_FILE",
      ],
      [
        "Pass the server's CA as `ca` (the emulator prints where its CA file is), or check `secure` and `port`.",
        "--ca-file",
        "M365_CA_FILE",
      ],
      [
        "Check authorityHost and the proxy option.",
        "--authority-host (M365_AUTHORITY_HOST)",
        "M365_AUTHORITY_HOST",
      ],
      ["Use a transport whose capabilities include it (see mailbox.transports()).", "--via", "TRANSPORTS"],
      ["Choose another port (--port / entraPort), or 0 for a free one.", "--port", "--port"],
      [
        "Check `host` and `port` (outlook.office365.com:993 for Microsoft 365) and that outbound TCP 993 is allowed.",
        "--imap-host and --imap-port (M365_IMAP_HOST, M365_IMAP_PORT",
        "M365_IMAP_HOST and M365_IMAP_PORT",
      ],
      [
        "Pass an id returned by listMessages(), watch() or moveMessage() of the imap transport (folder:uidvalidity:uid).",
        "m365-mail list --via imap",
        "READ_VIA=imap",
      ],
    ];
    for (const [library, cli, server] of cases) {
      expect(hintFor(library, "cli")).toContain(cli);
      expect(hintFor(library, "server")).toContain(server);
    }
  });
});

describe("exit codes match the README's table", () => {
  it("every code the table names maps to its row", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const rows = [...readme.matchAll(/^\| (\d+) \| (.*) \|$/gm)];
    let checked = 0;
    for (const [, exit, meaning] of rows) {
      for (const [, code] of meaning!.matchAll(/`([A-Z_]+)`/g)) {
        if (!(code! in ERROR_CODES)) continue;
        expect(exitCodeFor(new M365MailError(code as ErrorCode, "x")), code).toBe(Number(exit));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(12);
  });

  it("an untrusted CA and a busy port are configuration errors (2); throttling is temporary (4)", () => {
    const untrusted = new M365MailError("CONNECTION_FAILED", "the TLS certificate was not trusted", {
      retryable: false,
    });
    expect(exitCodeFor(untrusted)).toBe(EXIT.USAGE);
    expect(exitCodeFor(new M365MailError("CONNECTION_FAILED", "refused"))).toBe(EXIT.TEMPORARY);
    expect(exitCodeFor(new M365MailError("THROTTLED", "429"))).toBe(EXIT.TEMPORARY);
  });
});

describe("exit codes and hints of the real command", () => {
  let emu: TestEmulator;
  beforeAll(async () => {
    emu = await startTestEmulator(undefined, { dovecot: false });
  });
  afterAll(async () => {
    await emu?.stop();
  });

  it("a CA that does not sign the emulator's certificate: exit 2, the hint names --ca-file", async () => {
    const otherCa = join(emu.home, "other-ca.pem");
    // A well-formed certificate of another CA (the emulator's own would be trusted).
    const pem = readFileSync(emu.emulator.caPath, "utf8").replace(/[A-Za-z](?=[A-Za-z0-9+/]{40})/, (c) =>
      c === "A" ? "B" : "A",
    );
    await writeFile(otherCa, pem);
    const result = await runCli(["list", "--json"], {
      env: { ...emu.env(), M365_CA_FILE: otherCa },
      cwd: emu.home,
    });
    const { error } = parseJson(result);
    expect(result.code, JSON.stringify(error)).toBe(2);
    expect(error).toMatchObject({ code: "CONNECTION_FAILED", retryable: false });
    expect(error.message).toMatch(/not trusted/);
    expect(error.hint).toMatch(/--ca-file/);
    expect(speaksLibrary(error.hint)).toBe(false);
  });

  it("doctor --send-test bad@ is a usage error (2) before signing in", async () => {
    const result = await runCli(["doctor", "--send-test", "bad@", "--json"], {
      env: emu.env(),
      cwd: emu.home,
    });
    expect(result.code).toBe(2);
    expect(parseJson(result).error).toMatchObject({ code: "CONFIG_INVALID", source: "cli" });
  });

  it("the emulator on a busy port is a configuration error (2) naming --port", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await runCli(["emulator", "--port", String(port), "--json"], {
        env: emu.env(),
        cwd: emu.home,
        timeoutMs: 60_000,
      });
      expect(result.code, result.stdout + result.stderr).toBe(2);
      const { error } = parseJson(result);
      expect(error.hint).toContain("--port");
      expect(error.hint).not.toContain("entraPort");
    } finally {
      blocker.close();
    }
  });
});
