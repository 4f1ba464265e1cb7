import { M365MailError } from "@m365-mail/core";

/**
 * Asks for a secret on the terminal without echoing it. Raw mode lets us see every key: Enter ends,
 * Backspace deletes, Ctrl-C aborts; pasted text arrives in one chunk and works too.
 */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  const stderr = process.stderr;
  return new Promise((resolve, reject) => {
    let value = "";
    const finish = () => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write("\n");
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          finish();
          resolve(value);
          return;
        }
        if (ch === "\u0003") {
          finish();
          reject(
            new M365MailError("ABORTED", "the password prompt was cancelled", {
              source: "cli",
              hint: "Run the command again, or set M365_PASSWORD_FILE so that nothing is asked.",
            }),
          );
          return;
        }
        if (ch === "\u007f" || ch === "\b") value = [...value].slice(0, -1).join("");
        else if (ch >= " ") value += ch;
      }
    };
    stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on("data", onData);
  });
}
