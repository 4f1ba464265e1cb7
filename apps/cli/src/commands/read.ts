import { mkdir, writeFile } from "node:fs/promises";
import type { Message } from "@m365-mail/core";
import { attachmentTargets } from "../attachment-files.js";
import { type Command, type CommandContext, stringFlag, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { formatAddresses, formatDate, htmlToText } from "../format.js";
import { checkMessageId } from "../message-ops.js";
import { formatBytes } from "./send.js";

export const readCommand: Command = {
  name: "read",
  summary: "show one message: headers, body, attachments (Graph, IMAP or POP3)",
  positionals: [1, 1],
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    source: { type: "boolean" },
    "save-attachments": { type: "string" },
  },
  help: `Usage: m365-mail read <id> [--via graph|imap|pop3] [--source] [--save-attachments <dir>] [--json]

Shows a message found with \`m365-mail list\` (use the same --via: ids differ per protocol).
Reading does not mark the message as read.

Options:
  --via graph|imap|pop3      default graph
  --folder <name>            the folder, when the id alone does not say (Graph and IMAP ids do)
  --source                   print the RFC 5322 source (MIME) instead, e.g. > message.eml
  --save-attachments <dir>   write the attachments into <dir>
  --json                     { ok, via, message } (attachments with their sizes, not their bytes)`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const id = ctx.positionals[0]!;
    const via = viaFlag(flags, ["graph", "imap", "pop3"], "graph", "read");
    if (via !== "pop3") checkMessageId(id, via, "read");
    const folder = stringFlag(flags, "folder");
    const wantSource = flags.source === true;
    const session = await ctx.session({ transports: [via] });
    const progress = out.progress(`reading the message over ${via}`);
    let message: Message;
    try {
      const transport = session.mailbox.transport(via);
      const options = {
        signal: ctx.signal,
        ...(folder ? { folder } : {}),
        // Graph fetches the MIME source only when asked (an extra request).
        ...(via === "graph" && wantSource ? { raw: true } : {}),
      };
      message = await transport.getMessage!(id, options);
    } finally {
      progress.stop();
      await session.close().catch(() => {});
    }

    const saveDir = stringFlag(flags, "save-attachments");
    const saved: string[] = [];
    if (saveDir) {
      // Attachment names come from the sender: never a file outside the chosen folder, never two the same.
      const targets = attachmentTargets(
        saveDir,
        message.attachments.map((a) => a.filename),
      );
      await mkdir(saveDir, { recursive: true });
      for (const [i, attachment] of message.attachments.entries()) {
        const path = targets[i]!;
        await writeFile(path, attachment.content);
        saved.push(path);
      }
    }
    if (wantSource && !out.json) {
      if (!message.raw) {
        out.err("the transport returned no source for this message");
        return EXIT.FAILED;
      }
      process.stdout.write(message.raw);
      return EXIT.OK;
    }
    if (out.json) {
      const { raw, ...rest } = message;
      out.data({
        ok: true,
        via,
        message: {
          ...rest,
          attachments: message.attachments.map(({ content, ...a }, i) => ({
            ...a,
            ...(saved[i] ? { savedTo: saved[i] } : {}),
          })),
          ...(wantSource && raw ? { source: Buffer.from(raw).toString("utf8") } : {}),
        },
      });
      return EXIT.OK;
    }
    const p = out.paint;
    const header = (name: string, value: string | undefined) => {
      if (value) out.out(`${p.bold(`${name}:`.padEnd(9))} ${value}`);
    };
    header("From", message.from ? formatAddresses([message.from]) : undefined);
    header("To", formatAddresses(message.to));
    header("Cc", formatAddresses(message.cc));
    header("Date", formatDate(message.receivedAt));
    header("Subject", message.subject || p.dim("(no subject)"));
    header("Id", message.id);
    out.out();
    const body = message.text ?? (message.html ? htmlToText(message.html) : "");
    out.out(body.replace(/\s+$/, "") || p.dim("(no body)"));
    if (message.attachments.length) {
      out.out();
      out.out(p.bold(`Attachments (${message.attachments.length})`));
      message.attachments.forEach((a, i) => {
        out.out(
          `  ${a.filename}  ${p.dim(`${a.contentType}, ${formatBytes(a.size)}${a.inline ? ", inline" : ""}`)}${saved[i] ? ` → ${saved[i]}` : ""}`,
        );
      });
    }
    return EXIT.OK;
  },
};
