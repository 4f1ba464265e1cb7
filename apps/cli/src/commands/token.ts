import type { Resource } from "@m365-mail/core";
import { type Command, type CommandContext, stringFlag } from "../command.js";
import { EXIT, usageError } from "../exit-codes.js";
import { tokenInfo, tokenLines } from "../token-info.js";

export const tokenCommand: Command = {
  name: "token",
  summary: "sign in and show the access tokens' claims (the raw token only with --raw)",
  options: {
    resource: { type: "string" },
    raw: { type: "boolean" },
  },
  help: `Usage: m365-mail token [--resource graph|outlook|all] [--raw] [--json]

Signs in (password grant, then a refresh grant for the second resource) and shows what each token
is for: audience, scopes, user, tenant, app, expiry. The token itself is not printed.

Options:
  --resource <r>   graph (Microsoft Graph), outlook (SMTP/IMAP/POP3) or all (default: all; graph with --raw)
  --raw            print the access token itself, for piping into another tool (one resource only).
                   Anyone who sees it can read the mailbox until it expires: keep it out of logs.
  --json           the claims as JSON (with --raw, the token too)`,
  async run(ctx: CommandContext): Promise<number> {
    const { out } = ctx;
    const raw = ctx.flags.raw === true;
    const wanted = stringFlag(ctx.flags, "resource") ?? (raw ? "graph" : "all");
    if (!["graph", "outlook", "all"].includes(wanted)) {
      throw usageError(
        `--resource must be graph, outlook or all, got "${wanted}"`,
        "Run `m365-mail token --help`.",
      );
    }
    if (raw && wanted === "all") {
      throw usageError(
        "--raw prints one token: choose --resource graph or --resource outlook",
        "Add --resource graph.",
      );
    }
    const resources: Resource[] = wanted === "all" ? ["graph", "outlook"] : [wanted as Resource];
    const session = await ctx.session({ transports: [] });
    try {
      const tokens = [];
      for (const resource of resources) {
        const token = await session.auth.getAccessToken(resource, { signal: ctx.signal });
        tokens.push({ token, info: tokenInfo(token) });
      }
      if (raw && !out.json) {
        out.rawSecret(tokens[0]!.token.token);
        return EXIT.OK;
      }
      if (out.json) {
        if (raw) {
          // Built by hand: the JSON writer redacts, and the user asked for this one secret.
          const document = {
            ok: true,
            tokens: tokens.map(({ token, info }) => ({ ...info, token: token.token })),
          };
          out.rawSecret(JSON.stringify(document, null, 2));
        } else out.data({ ok: true, tokens: tokens.map(({ info }) => info) });
        return EXIT.OK;
      }
      for (const { info } of tokens) {
        for (const line of tokenLines(info, out.paint, "")) out.out(line);
        out.out(`         tenant  ${info.tenantId ?? "?"}  app ${info.appId ?? "?"}`);
      }
      out.err(out.paintErr.dim("Claims only; add --raw --resource graph|outlook to print a token."));
      return EXIT.OK;
    } finally {
      await session.close().catch(() => {});
    }
  },
};
