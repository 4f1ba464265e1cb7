import type { OutgoingAttachment } from "@m365-mail/core";
import { type CommandContext, listFlag, stringFlag } from "./command.js";
import { attachment, readStdin, readText } from "./commands/send.js";

/** `--to a,b --to c` → ["a", "b", "c"]. */
export function addressFlag(ctx: CommandContext, name: string): string[] {
  return listFlag(ctx.flags, name)
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter(Boolean);
}

export interface BodyFlags {
  text?: string;
  html?: string;
  attachments: OutgoingAttachment[];
}

/**
 * --text/--text-file/--html/--html-file ("-" reads stdin) and --attach, as `send` reads them.
 * With `stdinFallback`, no body flag means: read stdin when it is piped, else no body.
 */
export async function bodyFlags(ctx: CommandContext, stdinFallback: boolean): Promise<BodyFlags> {
  const { flags } = ctx;
  let text = stringFlag(flags, "text");
  let html = stringFlag(flags, "html");
  const textFile = stringFlag(flags, "text-file");
  const htmlFile = stringFlag(flags, "html-file");
  if (textFile) text = await readText(textFile, "text-file");
  if (htmlFile) html = await readText(htmlFile, "html-file");
  if (text === "-") text = await readStdin(process.stdin);
  else if (html === "-") html = await readStdin(process.stdin);
  else if (text === undefined && html === undefined && stdinFallback && !process.stdin.isTTY) {
    text = await readStdin(process.stdin);
  }
  const attachments = await Promise.all(listFlag(flags, "attach").map(attachment));
  return {
    ...(text !== undefined ? { text } : {}),
    ...(html !== undefined ? { html } : {}),
    attachments,
  };
}

export const BODY_OPTIONS = {
  text: { type: "string" },
  "text-file": { type: "string" },
  html: { type: "string" },
  "html-file": { type: "string" },
  attach: { type: "string", short: "a", multiple: true },
} as const;

export const BODY_HELP = `  --text <text>          your text ("-" reads stdin; piped stdin is read when no body flag is given);
                         --text-file <path> reads a file
  --html <html>          HTML instead ("-" reads stdin); --html-file <path> reads a file
  -a, --attach <file>    attach a file; repeat for more`;
