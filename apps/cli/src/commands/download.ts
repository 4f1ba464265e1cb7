import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { type AttachmentInfo, M365MailError } from "@m365-mail/core";
import { attachmentTargets } from "../attachment-files.js";
import { type Command, type CommandContext, listFlag, stringFlag, viaFlag } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";
import { formatBytes } from "./send.js";

export const downloadCommand: Command = {
  name: "download",
  summary: "save a message's attachments to files, streamed (Graph or IMAP)",
  positionals: [1, 1],
  options: {
    via: { type: "string" },
    folder: { type: "string" },
    attachment: { type: "string", multiple: true },
    out: { type: "string", short: "o" },
    list: { type: "boolean" },
  },
  help: `Usage: m365-mail download <id> [--attachment <name|id>]… [-o <dir>] [--list] [--via graph|imap]

Writes attachments to files as their bytes arrive: a 100 MB attachment is never held in memory.
A progress bar (bytes, rate, ETA) shows on a terminal.

Options:
  --attachment <name|id> only this one (repeat for more; one that matches nothing is NOT_FOUND,
                         exit 1); default: all that are not inline
  -o, --out <dir>        where to write (default: the current folder); names are made safe:
                         only the last path segment, \`.\`/\`..\` become attachment-<n>, a second
                         report.txt is saved as "report (2).txt"; files already there are replaced
  --list                 only list the attachments (id, name, type, size)
  --via graph|imap       default graph
  --json                 { ok, via, attachments: [{ id, filename, contentType, size, savedTo? }] }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const id = ctx.positionals[0]!;
    const via = viaFlag(flags, ["graph", "imap"], "graph", "download");
    checkMessageId(id, via, "download");
    const dir = stringFlag(flags, "out") ?? ".";
    const folder = stringFlag(flags, "folder");
    const wanted = listFlag(flags, "attachment");
    const session = await ctx.session({ transports: [via] });
    const results: (AttachmentInfo & { savedTo?: string })[] = [];
    try {
      const transport = session.mailbox.transport(via);
      const options = { signal: ctx.signal, ...(folder ? { folder } : {}) };
      const all = await operation(
        transport,
        "listAttachments",
        "download",
        "--via graph or --via imap",
      )(id, options);
      if (flags.list === true) {
        results.push(...all);
      } else {
        const chosen =
          wanted.length > 0
            ? all.filter((a) => wanted.includes(a.id) || wanted.includes(a.filename))
            : all.filter((a) => !a.inline);
        const missing = wanted.filter((w) => !all.some((a) => a.id === w || a.filename === w));
        if (missing.length > 0) {
          const has = all.map((a) => `"${a.filename}"`).join(", ");
          throw new M365MailError(
            "NOT_FOUND",
            `no attachment ${missing.map((m) => `"${m}"`).join(", ")} in message ${id}; it has ${has || "no attachments"}`,
            { source: "cli", hint: `Give a name or id that \`m365-mail download ${id} --list\` prints.` },
          );
        }
        // Attachment names come from the sender: never a file outside the chosen folder, never two the same.
        const targets = attachmentTargets(
          dir,
          chosen.map((a) => a.filename),
        );
        await mkdir(dir, { recursive: true });
        const download = operation(transport, "downloadAttachment", "download", "--via graph or --via imap");
        for (const [i, info] of chosen.entries()) {
          const target = targets[i]!;
          // Beside the target, so inside the folder: a complete file is then renamed, never copied.
          const partial = `${target}.part`;
          const bar = out.bar({
            label: info.filename,
            unit: "bytes",
            ...(info.size ? { total: info.size } : {}),
          });
          try {
            const file = await download(id, info.id, options);
            await pipeline(
              (async function* () {
                for await (const chunk of file.content) {
                  bar.advance(chunk.byteLength);
                  yield chunk;
                }
              })(),
              createWriteStream(partial),
              { signal: ctx.signal },
            );
            // Only a complete file gets the real name: an interrupted download leaves no half file behind.
            await rename(partial, target);
          } catch (error) {
            await rm(partial, { force: true });
            throw error;
          } finally {
            bar.stop();
          }
          results.push({ ...info, savedTo: target });
        }
      }
    } finally {
      await session.close().catch(() => {});
    }
    if (out.json) {
      out.data({ ok: true, via, attachments: results });
      return EXIT.OK;
    }
    if (results.length === 0) out.err("the message has no attachments to download");
    for (const a of results) {
      const size = a.size !== undefined ? `, ${formatBytes(a.size)}` : "";
      out.out(
        a.savedTo
          ? `${out.paint.ok("✓")} ${a.savedTo}${out.paint.dim(` (${a.contentType}${size})`)}`
          : `${a.id}  ${a.filename}  ${out.paint.dim(`${a.contentType}${size}${a.inline ? ", inline" : ""}`)}`,
      );
    }
    return EXIT.OK;
  },
};
