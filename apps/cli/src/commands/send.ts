import { readFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import type { OutgoingAttachment, OutgoingMessage } from "@m365-mail/core";
import { type Command, type CommandContext, listFlag, stringFlag, viaFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";

const CONTENT_TYPES: Record<string, string> = {
  ".pdf": "application/pdf",
  ".txt": "text/plain",
  ".csv": "text/csv",
  ".html": "text/html",
  ".htm": "text/html",
  ".json": "application/json",
  ".xml": "application/xml",
  ".zip": "application/zip",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".svg": "image/svg+xml",
  ".eml": "message/rfc822",
  ".ics": "text/calendar",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
};

export async function readStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}

export async function readText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw usageError(`cannot read ${path} (--${flag})`, `Check the path given to --${flag}.`, error);
  }
}

export async function attachment(path: string): Promise<OutgoingAttachment> {
  try {
    const content = await readFile(path);
    return {
      filename: basename(path),
      content: new Uint8Array(content.buffer, content.byteOffset, content.byteLength),
      contentType: CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream",
    };
  } catch (error) {
    throw usageError(`cannot read the attachment ${path}`, "Check the path given to --attach.", error);
  }
}

/** Uploads over this size get a progress bar (on a terminal). */
const PROGRESS_BAR_BYTES = 3 * 1024 * 1024;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export const sendCommand: Command = {
  name: "send",
  summary:
    "send a message over Graph or SMTP (to, cc, bcc, subject, text, html, attachments; body from stdin)",
  options: {
    via: { type: "string" },
    to: { type: "string", multiple: true },
    cc: { type: "string", multiple: true },
    bcc: { type: "string", multiple: true },
    subject: { type: "string", short: "s" },
    text: { type: "string" },
    "text-file": { type: "string" },
    html: { type: "string" },
    "html-file": { type: "string" },
    attach: { type: "string", short: "a", multiple: true },
  },
  help: `Usage: m365-mail send --to <address> [--cc …] [--bcc …] --subject <text> [body] [--attach <file> …] [--via graph|smtp]

Sends one message as the signed-in user. Without --text/--html the text body is read from stdin:
  echo "The printer is fixed." | m365-mail send --to alice@contoso.com -s "Ticket #42"

Options:
  --via graph|smtp       Microsoft Graph (default; Mail.Send) or SMTP AUTH (SMTP.Send)
  --to, --cc, --bcc      a recipient ("a@b.c" or "Name <a@b.c>"); repeat or separate with commas
  -s, --subject <text>
  --text <text>          plain-text body ("-" reads stdin); --text-file <path> reads a file
  --html <html>          HTML body ("-" reads stdin); --html-file <path> reads a file
  -a, --attach <file>    attach a file; repeat for more (Graph uploads files over 3 MB in chunks)
  --json                 { ok, via, messageId, accepted, rejected }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const via = viaFlag(flags, ["graph", "smtp"], "graph", "send");
    const split = (name: string) =>
      listFlag(flags, name)
        .flatMap((v) => v.split(","))
        .map((v) => v.trim())
        .filter(Boolean);
    const to = split("to");
    const cc = split("cc");
    const bcc = split("bcc");
    if (to.length + cc.length + bcc.length === 0) {
      throw usageError("send needs at least one recipient", "Add --to <address> (or --cc / --bcc).");
    }
    let text = stringFlag(flags, "text");
    let html = stringFlag(flags, "html");
    const textFile = stringFlag(flags, "text-file");
    const htmlFile = stringFlag(flags, "html-file");
    if (textFile) text = await readText(textFile, "text-file");
    if (htmlFile) html = await readText(htmlFile, "html-file");
    if (text === "-") text = await readStdin(process.stdin);
    else if (html === "-") html = await readStdin(process.stdin);
    else if (text === undefined && html === undefined) {
      if (process.stdin.isTTY) {
        throw usageError("send needs a body", "Give --text or --html, or pipe the text into the command.");
      }
      text = await readStdin(process.stdin);
    }
    const attachments = await Promise.all(listFlag(flags, "attach").map(attachment));
    const message: OutgoingMessage = {
      to,
      ...(cc.length ? { cc } : {}),
      ...(bcc.length ? { bcc } : {}),
      subject: stringFlag(flags, "subject") ?? "",
      ...(text !== undefined ? { text } : {}),
      ...(html !== undefined ? { html } : {}),
      ...(attachments.length ? { attachments } : {}),
    };
    const bytes = attachments.reduce(
      (sum, a) => sum + (typeof a.content === "string" ? a.content.length : a.content.byteLength),
      0,
    );
    for (const a of attachments) {
      const size = typeof a.content === "string" ? a.content.length : a.content.byteLength;
      if (size === 0) out.warn(`${a.filename} is empty`);
    }

    const session = await ctx.session({ transports: [via] });
    const what = attachments.length ? ` with ${attachments.length} attachment(s), ${formatBytes(bytes)}` : "";
    const progress = out.progress(`sending${what} over ${via === "graph" ? "Microsoft Graph" : "SMTP"}`);
    // Over a few MB a bar with bytes, rate and ETA replaces the spinner (Graph reports each chunk).
    let bar: ReturnType<typeof out.bar> | undefined;
    const onProgress =
      bytes > PROGRESS_BAR_BYTES
        ? ({ done, total }: { done: number; total: number }) => {
            if (!bar) {
              progress.stop();
              bar = out.bar({ label: "uploading", unit: "bytes", total });
            }
            bar.set(done, total);
          }
        : undefined;
    try {
      const result = await session.mailbox.send(message, {
        via,
        signal: ctx.signal,
        ...(onProgress ? { onProgress } : {}),
      });
      bar?.stop();
      progress.stop();
      if (out.json) out.data({ ok: result.accepted.length > 0, via, ...result });
      else {
        out.out(`${out.paint.ok("✓")} sent over ${via}: ${result.messageId}`);
        if (result.accepted.length) out.out(`  accepted: ${result.accepted.join(", ")}`);
        if (result.rejected.length) out.out(`  ${out.paint.fail("rejected:")} ${result.rejected.join(", ")}`);
      }
      return result.accepted.length > 0 || result.rejected.length === 0 ? EXIT.OK : EXIT.FAILED;
    } finally {
      bar?.stop();
      progress.stop();
      await session.close().catch(() => {});
    }
  },
};
