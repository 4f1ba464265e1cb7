import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dovecotPart } from "./dovecot/index.js";
import { type Emulator, type StartEmulatorOptions, startEmulator } from "./emulator.js";
import { graphPart } from "./graph/index.js";
import type { EmulatorPart } from "./part.js";
import { smtpPart } from "./smtp/index.js";
import { createMailStore, type MailStore } from "./store/index.js";

export interface StartTestEmulatorOptions extends Omit<StartEmulatorOptions, "dataDir" | "parts"> {
  /**
   * The parts to start. Where Dovecot is not installed its part is skipped (see `emulator.parts.dovecot`)
   * and the rest runs.
   * @default [graphPart(), smtpPart(), dovecotPart()]
   */
  parts?: readonly EmulatorPart[];
  /** Start of the temporary data folder's name, to tell whose folder it was. @default "m365-emulator-" */
  prefix?: string;
}

export interface TestEmulator extends Emulator {
  /** The Maildir store behind Graph, SMTP, IMAP and POP3: `store.deliver()` is mail arriving from outside. */
  readonly store: MailStore;
  /** Stops every part and deletes the temporary data folder. */
  stop(): Promise<void>;
}

/**
 * An emulator for one test run (yours or your CI's): a fresh temporary data folder (new CA, new signing
 * key, empty mailboxes), all parts by default, and `stop()` that leaves nothing behind.
 */
export async function startTestEmulator(options: StartTestEmulatorOptions = {}): Promise<TestEmulator> {
  const { prefix, parts, ...rest } = options;
  const dataDir = await mkdtemp(join(tmpdir(), prefix ?? "m365-emulator-"));
  let emulator: Emulator;
  try {
    // mkdtemp makes the folder 0700; Dovecot's mail processes (uid "mail") must pass through it.
    await chmod(dataDir, 0o711);
    emulator = await startEmulator({
      ...rest,
      dataDir,
      parts: parts ?? [graphPart(), smtpPart(), dovecotPart()],
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    ...emulator,
    store: createMailStore({ root: dataDir, ...(rest.logger ? { logger: rest.logger } : {}) }),
    stop() {
      stopped ??= emulator.stop().finally(() => rm(dataDir, { recursive: true, force: true }));
      return stopped;
    },
  };
}
