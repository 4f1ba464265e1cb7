import type { Command } from "../command.js";
import { BODY_HELP, BODY_OPTIONS } from "../compose-flags.js";
import { respond } from "./reply.js";

export const forwardCommand: Command = {
  name: "forward",
  summary: "forward a message with its attachments (Graph, or IMAP + SMTP)",
  positionals: [1, 1],
  options: {
    via: { type: "string" },
    to: { type: "string", multiple: true },
    cc: { type: "string", multiple: true },
    ...BODY_OPTIONS,
  },
  help: `Usage: m365-mail forward <id> --to <address> [--text <text> | body on stdin] [--via graph|imap]

Forwards the message, its attachments included, below your text.

Options:
  --via graph|imap       Graph (default), or read over IMAP and send over SMTP
  --to, --cc <address>   recipients (--to is required); repeat or separate with commas
${BODY_HELP}
  --json                 { ok, via, messageId, accepted }`,
  run: (ctx) => respond(ctx, "forward", "forward"),
};
