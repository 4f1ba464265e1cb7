import { isM365MailError } from "@m365-mail/core";
import { EXIT } from "./exit-codes.js";
import { main } from "./main.js";

/** The process entry: signals abort the running command, which then cleans up and returns. */
async function runProcess(): Promise<void> {
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(EXIT.INTERRUPTED);
    interrupted = true;
    controller.abort(new Error(`stopped by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // A closed pipe (`| head`) is not an error worth a stack trace.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(EXIT.OK);
  });
  const code = await main(process.argv.slice(2), { signal: controller.signal });
  process.exitCode = code;
  // Watchers and sockets of libraries may linger after close(); the command is done.
  setTimeout(() => process.exit(code), 2000).unref();
}

runProcess().catch((error: unknown) => {
  process.stderr.write(`${isM365MailError(error) ? error.message : String(error)}\n`);
  process.exit(EXIT.FAILED);
});
