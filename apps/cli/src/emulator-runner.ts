import { join } from "node:path";
import type { Emulator, EmulatorPart } from "@m365-mail/emulator";
import type { ResolvedConfig } from "./config.js";
import { stderrLogger } from "./session.js";

export interface FullEmulatorOptions {
  /** Directory JSON file; the demo directory (contoso.com) when absent. */
  directory?: string;
  dataDir?: string;
  host?: string;
  /** Entra ID's port; 0 for a free one. */
  port?: number;
  /** Run IMAP/POP3 through Dovecot when it is installed. @default true */
  dovecot?: boolean;
  verbose?: boolean;
}

// Loaded on first use: commands against a real tenant never load the emulator (node-forge, smtp-server, …).
export const loadEmulator = () => import("@m365-mail/emulator");

/** Whether IMAP/POP3 can run here; when not, the command to install Dovecot. */
export async function dovecotStatus(): Promise<{ installed: boolean; install: string }> {
  const { DOVECOT_INSTALL_HINT, findDovecot } = await loadEmulator();
  return { installed: findDovecot() !== undefined, install: DOVECOT_INSTALL_HINT };
}

/** The emulator with every part: Entra ID, Graph, SMTP, and IMAP/POP3 when Dovecot is installed. */
export async function startFullEmulator(options: FullEmulatorOptions = {}): Promise<Emulator> {
  const { dovecotPart, graphPart, smtpPart, startEmulator } = await loadEmulator();
  const parts: EmulatorPart[] = [graphPart(), smtpPart()];
  if (options.dovecot !== false) parts.push(dovecotPart());
  return startEmulator({
    ...(options.directory ? { directory: options.directory } : {}),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.host ? { host: options.host } : {}),
    entraPort: options.port ?? 0,
    parts,
    ...(options.verbose ? { logger: stderrLogger() } : {}),
  });
}

/** Settings that point every client of the CLI at a running emulator, as `m365-mail emulator` prints them. */
export function emulatorConfig(emulator: Emulator, username: string, password: string): ResolvedConfig {
  return {
    tenantId: emulator.tenantId,
    clientId: emulator.clientId,
    username,
    cloud: emulator.cloud,
    ca: emulator.caPem,
    caFile: emulator.caPath,
    auth: "ropc",
    // The demo signs in with the password: nothing is stored, the path only satisfies the type.
    tokenCacheFile: join(emulator.dataDir, "token-cache.json"),
    origins: { tenantId: "default", clientId: "default", username: "default", password: "default" },
    env: {},
    password: { origin: "default", description: "the emulator's demo password", read: () => password },
  };
}

/** What a client process needs (environment variables), as `export` lines or a `.env` file. */
export function emulatorEnv(emulator: Emulator, username?: string): Record<string, string> {
  const env = emulator.env();
  // The CLI reads the CA itself (a .env file cannot set NODE_EXTRA_CA_CERTS in time for Node).
  return { ...env, M365_CA_FILE: emulator.caPath, ...(username ? { M365_USERNAME: username } : {}) };
}
