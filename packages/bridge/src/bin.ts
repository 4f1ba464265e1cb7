#!/usr/bin/env node
import { runBridgeCommand } from "./bridge-command.js";

// `m365-mail-bridge --config <file>`: the bridge as a service (systemd, a container). SIGHUP reloads the
// config, SIGTERM and SIGINT drain open sessions and stop.
const controller = new AbortController();
let reload: (() => void) | undefined;
process.on("SIGHUP", () => reload?.());
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    // A second signal means "now".
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  });
}
const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
};
const code = await runBridgeCommand(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stdin: readStdin,
  env: process.env,
  signal: controller.signal,
  onReloadRequest: (fn) => {
    reload = fn;
  },
});
process.exitCode = code;
// Sockets of libraries may linger after close(); the bridge is done.
setTimeout(() => process.exit(code), 2000).unref();
