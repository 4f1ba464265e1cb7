/**
 * The emulator in a process of its own, as Microsoft 365 is for every real client. When a bench's
 * client shared a process with the emulator, client and server took turns on one event loop with no
 * process switch between a request and its answer: a shortcut no real client has, which favoured
 * whichever side of a comparison talked to the emulator most directly (the bridge's path could not
 * take it) and put the server's TLS work on the client's event loop.
 *
 * Parts: Dovecot behind its Exchange-shaped front, and optionally the SMTP part with its mail going to
 * a sink (the Maildir store counts a folder's files on every delivery; that growing cost would drown
 * what a bench measures) and Exchange's limits set by the bench.
 * The child exits when the bench does (its IPC channel closes), even if the bench was killed.
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { startNodeChild } from "./node-child.js";

export interface EmulatorProcessOptions {
  dataDir: string;
  /** Start the SMTP part with these limits; accepted mail is dropped. */
  smtpSink?: { messagesPerWindow: number; maxConnectionsPerMailbox: number };
}

export interface EmulatorProcess {
  tenantId: string;
  clientId: string;
  cloud: { smtp: { host: string; port: number } } & Record<string, unknown>;
  authorityHost: string;
  caPem: string;
  caPath: string;
  env(): Record<string, string>;
  /** The Exchange-shaped IMAP/POP3 front before Dovecot. */
  server: { host: string; imapPort: number; pop3Port: number };
  stop(): Promise<void>;
}

export async function startEmulatorProcess(options: EmulatorProcessOptions): Promise<EmulatorProcess> {
  const dist = pathToFileURL(
    fileURLToPath(new URL("../../packages/emulator/dist/index.js", import.meta.url)),
  ).href;
  const script = `
import { startEmulator, dovecotPart, smtpPart } from ${JSON.stringify(dist)};
const { dataDir, smtpSink } = JSON.parse(process.argv[1]);
const dovecot = dovecotPart();
const parts = [dovecot];
if (smtpSink) parts.push(smtpPart({ limits: smtpSink, store: { deliver: async () => undefined } }));
const emu = await startEmulator({ dataDir, parts });
const s = dovecot.server;
if (!s) {
  console.error("[emulator] the Dovecot part did not start: " + JSON.stringify(emu.parts.dovecot));
  process.exit(1);
}
console.log(JSON.stringify({
  tenantId: emu.tenantId, clientId: emu.clientId, cloud: emu.cloud, authorityHost: emu.authorityHost,
  caPem: emu.caPem, caPath: emu.caPath, env: emu.env(),
  server: { host: s.host, imapPort: s.imapPort, pop3Port: s.pop3Port },
}));
const stop = () => emu.stop().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("disconnect", stop);
`;
  const child = await startNodeChild<Omit<EmulatorProcess, "env" | "stop"> & { env: Record<string, string> }>(
    "emulator",
    script,
    options,
  );
  return { ...child.ready, env: () => child.ready.env, stop: child.stop };
}
