import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEMO_PASSWORD,
  type Directory,
  defaultDirectory,
  dovecotPart,
  type TestEmulator as EmulatorInTempDir,
  findDovecot,
  graphPart,
  smtpPart,
  startTestEmulator as startEmulatorInTempDir,
} from "@m365-mail/emulator";
import { needs } from "@m365-mail/test-helpers";
import { expect } from "vitest";

export const BIN = join(import.meta.dirname, "..", "dist", "cli.js");
// In CI a missing Dovecot fails the run with the install command; locally the IMAP/POP3 cases skip.
export const HAS_DOVECOT = needs("dovecot", () => findDovecot() !== undefined);
export const SUPPORT = "support@contoso.com";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

/** A clean environment: no HOME config, no .env of the repository, no colour unless asked. */
export function baseEnv(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LANG: "C.UTF-8" };
}

/** Runs `node dist/cli.js …` and collects its output; kills it (and fails) after `timeoutMs`. */
export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: Object.fromEntries(
        Object.entries(options.env ?? {}).filter(([, v]) => v !== undefined),
      ) as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `m365-mail ${args.join(" ")} did not finish within ${options.timeoutMs ?? 60_000} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Starts the command in the background (watch, emulator); the caller stops it. */
export function spawnCli(
  args: readonly string[],
  options: RunCliOptions = {},
): {
  child: ChildProcess;
  output: () => CliResult;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: Object.fromEntries(
      Object.entries(options.env ?? {}).filter(([, v]) => v !== undefined),
    ) as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, output: () => ({ code: child.exitCode, stdout, stderr }), exited };
}

/** Waits until `check` passes, polling; fails after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;

/** Neither the password nor any token appears anywhere in what the command printed. */
export function expectNoSecrets(result: CliResult, password = DEMO_PASSWORD): void {
  for (const text of [result.stdout, result.stderr]) {
    expect(text).not.toContain(password);
    expect(text).not.toMatch(JWT);
  }
}

export interface TestEmulator {
  /** `emulator.store.deliver()` files a message as if it arrived from outside. */
  emulator: EmulatorInTempDir;
  /** Environment that points the CLI at it, signed in as `username` with the demo password. */
  env(username?: string): Record<string, string>;
  home: string;
  stop(): Promise<void>;
}

/** An emulator with every part and the demo directory (changed by `change`); `home` is the CLI's HOME and cwd. */
export async function startTestEmulator(
  change?: (directory: Directory) => void,
  options: { dovecot?: boolean } = {},
): Promise<TestEmulator> {
  const home = await mkdtemp(join(tmpdir(), "m365-cli-test-"));
  const directory = defaultDirectory();
  change?.(directory);
  let emulator: EmulatorInTempDir;
  try {
    emulator = await startEmulatorInTempDir({
      prefix: "m365-cli-emulator-",
      directory,
      parts: [graphPart(), smtpPart(), ...(options.dovecot !== false && HAS_DOVECOT ? [dovecotPart()] : [])],
    });
  } catch (error) {
    await rm(home, { recursive: true, force: true });
    throw error;
  }
  // Lift SMTP's per-minute limit: the tests send more than Exchange's 30 a minute across files.
  emulator.admin.updatePartSettings("smtp", { messagesPerWindow: 0 });
  return {
    emulator,
    home,
    env: (username = SUPPORT) => ({
      ...baseEnv(home),
      ...emulator.env(),
      M365_USERNAME: username,
      M365_PASSWORD: DEMO_PASSWORD,
    }),
    async stop() {
      await emulator.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

export function parseJson<T = any>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}
