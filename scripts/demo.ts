// `npm run demo` → scripts/demo.sh (installs and builds) → here → the CLI's own demo, run as a user runs it:
// `m365-mail demo` starts the emulator (Entra ID, Graph, SMTP, IMAP/POP3 via Dovecot), runs doctor and
// every capability, prints a summary and stops what it started. Arguments are passed on (e.g. --json).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../apps/cli/dist/cli.js", import.meta.url));
if (!existsSync(bin)) {
  console.error(
    `${bin} is missing: build first (bash scripts/setup.sh, or pnpm --filter @m365-mail/cli build)`,
  );
  process.exit(2);
}
const child = spawn(process.execPath, [bin, "demo", ...process.argv.slice(2)], { stdio: "inherit" });
// Ctrl-C reaches the CLI too (same process group); it stops the emulator and exits on its own.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("close", (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
