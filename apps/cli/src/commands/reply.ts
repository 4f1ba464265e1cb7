import { composeReply, type ReplyInput, type ReplyKind, type SendResult } from "@m365-mail/core";
import { type Command, type CommandContext, viaFlag } from "../command.js";
import { addressFlag, BODY_HELP, BODY_OPTIONS, bodyFlags } from "../compose-flags.js";
import { EXIT, usageError } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

/**
 * Reply, reply-all or forward. Over Graph, Exchange builds the message (`createReply…`: threading
 * headers, quoted original); over IMAP the original is read over IMAP, the answer built here
 * (`composeReply`: In-Reply-To, References, quoted text) and sent over SMTP.
 */
export async function respond(ctx: CommandContext, kind: ReplyKind, command: string): Promise<number> {
  const { out, flags } = ctx;
  const id = ctx.positionals[0]!;
  const via = viaFlag(flags, ["graph", "imap"], "graph", command);
  checkMessageId(id, via, command);
  const body = await bodyFlags(ctx, true);
  const to = addressFlag(ctx, "to");
  const cc = addressFlag(ctx, "cc");
  if (kind === "forward" && to.length === 0) {
    throw usageError("forward needs a recipient", "Add --to <address>.");
  }
  const input: ReplyInput = {
    kind,
    ...(body.text !== undefined ? { text: body.text } : {}),
    ...(body.html !== undefined ? { html: body.html } : {}),
    ...(to.length ? { to } : {}),
    ...(cc.length ? { cc } : {}),
    ...(body.attachments.length ? { attachments: body.attachments } : {}),
  };
  const session = await ctx.session({ transports: via === "imap" ? ["imap", "smtp"] : ["graph"] });
  const progress = out.progress(`${command === "forward" ? "forwarding" : "replying"} over ${via}`);
  let result: SendResult;
  try {
    if (via === "graph") {
      const graph = session.mailbox.transport("graph");
      result = await operation(graph, "reply", command, "--via graph")(id, input, { signal: ctx.signal });
    } else {
      const original = await session.mailbox.transport("imap").getMessage(id, { signal: ctx.signal });
      const message = composeReply(original, input, session.address);
      result = await session.mailbox.send(message, { via: "smtp", signal: ctx.signal });
    }
  } finally {
    progress.stop();
    await session.close().catch(() => {});
  }
  if (out.json) out.data({ ok: true, via: via === "imap" ? "imap+smtp" : via, ...result });
  else {
    out.out(`${out.paint.ok("✓")} ${command === "forward" ? "forwarded" : "replied"}: ${result.messageId}`);
    if (result.accepted.length) out.out(`  to: ${result.accepted.join(", ")}`);
  }
  return EXIT.OK;
}

export const replyCommand: Command = {
  name: "reply",
  summary: "reply (or --all: reply-all) to a message, quoting it (Graph, or IMAP + SMTP)",
  positionals: [1, 1],
  options: {
    via: { type: "string" },
    all: { type: "boolean" },
    to: { type: "string", multiple: true },
    cc: { type: "string", multiple: true },
    ...BODY_OPTIONS,
  },
  help: `Usage: m365-mail reply <id> [--all] [--text <text> | body on stdin] [--attach <file>] [--via graph|imap]

Replies to the sender (with --all: also to the other recipients, never to yourself), with the
original quoted below your text and the threading headers (In-Reply-To, References) mail clients use.
  echo "Fixed, thanks." | m365-mail reply AAMkAD… 

Options:
  --via graph|imap       Graph (default; Mail.ReadWrite + Mail.Send), or read over IMAP and send over SMTP
  --all                  reply-all
  --to, --cc <address>   more recipients
${BODY_HELP}
  --json                 { ok, via, messageId, accepted }`,
  run: (ctx) => respond(ctx, ctx.flags.all === true ? "replyAll" : "reply", "reply"),
};
