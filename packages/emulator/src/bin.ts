#!/usr/bin/env node
import { parseArgs } from "node:util";
import { isM365MailError } from "@m365-mail/core";
import { DEMO_PASSWORD, defaultDirectory } from "./default-directory.js";
import { dovecotPart } from "./dovecot/index.js";
import { startEmulator } from "./emulator.js";
import { graphPart } from "./graph/index.js";
import type { EmulatorPart } from "./part.js";
import { smtpPart } from "./smtp/index.js";

// Parts the bin can run, by the name `--parts` uses.
const PARTS: Record<string, () => EmulatorPart> = {
  graph: () => graphPart(),
  smtp: () => smtpPart(),
  // Skipped, with the install command, where Dovecot is not installed.
  dovecot: () => dovecotPart(),
};

const USAGE = `m365-emulator: offline Microsoft 365 (Entra ID token endpoint, discovery, admin API)

Usage: m365-emulator [--directory dir.json] [--data-dir DIR] [--port N] [--adfs-port N] [--host H] [--parts LIST] [--verbose]
       m365-emulator --print-directory     print the demo directory (a starting point for --directory)

  --directory   directory JSON (tenants, app registrations, users); default: the demo tenant contoso.com
  --data-dir    where the CA and signing key live; default: $M365_EMULATOR_HOME or ./.m365-emulator
  --port        HTTPS port of Entra ID; default 44443 (0 = a free port)
  --adfs-port   HTTPS port of the emulated AD FS (federated domains); default 0 (a free port)
  --host        interface to listen on; default 127.0.0.1
  --parts       comma-separated parts besides Entra ID: ${Object.keys(PARTS).join(",")} (default), or "none"
  --verbose     log every request`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      directory: { type: "string" },
      "data-dir": { type: "string" },
      port: { type: "string" },
      "adfs-port": { type: "string" },
      host: { type: "string" },
      parts: { type: "string" },
      verbose: { type: "boolean" },
      "print-directory": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void console.log(USAGE);
  if (values["print-directory"]) return void console.log(JSON.stringify(defaultDirectory(), null, 2));
  const port = values.port === undefined ? 44443 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be a port number (0-65535), got ${values.port}`);
    process.exitCode = 2;
    return;
  }
  const wanted = (values.parts ?? Object.keys(PARTS).join(","))
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const unknown = wanted.filter((p) => p !== "none" && !PARTS[p]);
  if (unknown.length > 0) {
    console.error(
      `--parts: unknown part ${unknown.join(", ")} (known: ${Object.keys(PARTS).join(", ")}, none)`,
    );
    process.exitCode = 2;
    return;
  }
  const adfsPort = values["adfs-port"] === undefined ? 0 : Number(values["adfs-port"]);
  if (!Number.isInteger(adfsPort) || adfsPort < 0 || adfsPort > 65535) {
    console.error(`--adfs-port must be a port number (0-65535), got ${values["adfs-port"]}`);
    process.exitCode = 2;
    return;
  }
  const parts = wanted.filter((p) => p !== "none").map((p) => PARTS[p]!());
  const emulator = await startEmulator({
    parts,
    ...(values.directory ? { directory: values.directory } : {}),
    ...(values["data-dir"] ? { dataDir: values["data-dir"] } : {}),
    ...(values.host ? { host: values.host } : {}),
    entraPort: port,
    adfsPort,
    ...(values.verbose ? { logger: console } : {}),
  });
  const lines = [
    `m365 emulator running`,
    `  authority   ${emulator.authority}`,
    `  tenant id   ${emulator.tenantId}`,
    `  client id   ${emulator.clientId}`,
    `  CA          ${emulator.caPath}`,
    `  admin API   ${emulator.authorityHost}/_admin/`,
    `  AD FS       ${emulator.adfsOrigin}/adfs/services/trust/mex`,
  ];
  if (!values.directory)
    lines.push(`  users       support@contoso.com, alice@contoso.com, … (password: ${DEMO_PASSWORD})`);
  for (const [name, info] of Object.entries(emulator.parts)) {
    lines.push(`  ${name.padEnd(11)} ${info.skipped ? `skipped: ${info.skipped}` : "running"}`);
  }
  lines.push("", "Clients need:");
  for (const [key, value] of Object.entries(emulator.env())) lines.push(`export ${key}=${value}`);
  lines.push("", "Ctrl-C stops it.");
  console.log(lines.join("\n"));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    emulator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error: unknown) => {
  if (isM365MailError(error)) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
});
