import type { OutgoingMessage } from "@m365-mail/core";
import { type Command, type CommandContext, stringFlag, viaFlag } from "../command.js";
import { addressFlag, BODY_HELP, BODY_OPTIONS, bodyFlags } from "../compose-flags.js";
import { EXIT, usageError } from "../exit-codes.js";
import { checkMessageId, operation } from "../message-ops.js";

const ACTIONS = ["create", "update", "send"] as const;

export const draftCommand: Command = {
  name: "draft",
  summary: "create, change and send drafts (Graph)",
  positionals: [1, 2],
  options: {
    via: { type: "string" },
    to: { type: "string", multiple: true },
    cc: { type: "string", multiple: true },
    bcc: { type: "string", multiple: true },
    subject: { type: "string", short: "s" },
    ...BODY_OPTIONS,
  },
  help: `Usage: m365-mail draft create [--to …] [-s <subject>] [body]      prints the draft's id
       m365-mail draft update <id> [--to …] [-s <subject>] [body]   changes only what is given
       m365-mail draft send <id>

Drafts live in the Drafts folder, where Outlook shows them too.

Options:
  --to, --cc, --bcc      recipients (update: replaces that list)
  -s, --subject <text>
${BODY_HELP}
  --json                 create/update: { ok, id, messageId }; send: { ok, messageId, accepted }`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const action = ctx.positionals[0] as (typeof ACTIONS)[number];
    if (!ACTIONS.includes(action)) {
      throw usageError(
        `unknown draft action "${action}"`,
        "Use draft create, draft update <id> or draft send <id>.",
      );
    }
    const id = ctx.positionals[1];
    if (action !== "create" && !id)
      throw usageError(`draft ${action} needs the draft's id`, "Give the id `draft create` printed.");
    if (action === "create" && id)
      throw usageError("draft create takes no id", "Use draft update <id> to change a draft.");
    const via = viaFlag(flags, ["graph"], "graph", "draft");
    if (id) checkMessageId(id, via, "draft");
    let message: OutgoingMessage = {};
    if (action !== "send") {
      const body = await bodyFlags(ctx, action === "create");
      const to = addressFlag(ctx, "to");
      const cc = addressFlag(ctx, "cc");
      const bcc = addressFlag(ctx, "bcc");
      const subject = stringFlag(flags, "subject");
      message = {
        ...(to.length ? { to } : {}),
        ...(cc.length ? { cc } : {}),
        ...(bcc.length ? { bcc } : {}),
        ...(subject !== undefined ? { subject } : {}),
        ...(body.text !== undefined ? { text: body.text } : {}),
        ...(body.html !== undefined ? { html: body.html } : {}),
        ...(body.attachments.length ? { attachments: body.attachments } : {}),
      };
    }
    const session = await ctx.session({ transports: [via] });
    try {
      const transport = session.mailbox.transport(via);
      const options = { signal: ctx.signal };
      if (action === "send") {
        const result = await operation(
          transport,
          "sendDraft",
          "sending a draft",
          "--via graph",
        )(id!, options);
        if (out.json) out.data({ ok: true, via, ...result });
        else
          out.out(
            `${out.paint.ok("✓")} sent: ${result.messageId}${result.accepted.length ? `\n  to: ${result.accepted.join(", ")}` : ""}`,
          );
        return EXIT.OK;
      }
      const ref =
        action === "create"
          ? await operation(transport, "createDraft", "drafts", "--via graph")(message, options)
          : await operation(transport, "updateDraft", "drafts", "--via graph")(id!, message, options);
      if (out.json) out.data({ ok: true, via, ...ref });
      else out.out(`${out.paint.ok("✓")} draft ${action === "create" ? "saved" : "updated"}: ${ref.id}`);
      return EXIT.OK;
    } finally {
      await session.close().catch(() => {});
    }
  },
};
