import type { Command, CommandContext } from "../command.js";
import { requireIdentity } from "../config.js";
import { EXIT, usageError } from "../exit-codes.js";
import { errorJson } from "../output.js";
import { stderrLogger } from "../session.js";
import { openTokenCache } from "../token-cache.js";
import { tokenInfo, tokenLines } from "../token-info.js";

export const loginCommand: Command = {
  name: "login",
  summary: "sign in once with a device code (for accounts ROPC cannot serve: MFA) and store the sign-in",
  options: {
    "device-code": { type: "boolean" },
  },
  help: `Usage: m365-mail login --device-code [--json]

Signs in with the device code flow: prints a code and a page (https://microsoft.com/devicelogin);
a person opens the page on any device, enters the code and signs in as the mailbox user (MFA
included). The sign-in (a refresh token, never the password) is stored encrypted in the token cache
file; from then on every command and the server use it without a person when run with
--auth device-code (M365_AUTH=device-code); the bridge keeps its own (m365-mail bridge login).
Run it again when a command says the sign-in expired.

Options:
  --device-code   the device code flow (the only login there is: ROPC needs none)
  --json          one line {"type":"device-code",…} when the code is issued, then the result

Settings: --token-cache-file / M365_TOKEN_CACHE_FILE (default token-cache.json beside the config
file); its key is M365_CACHE_KEY when set, else a random key in token-cache.key (mode 0600).`,
  async run(ctx: CommandContext): Promise<number> {
    const { out } = ctx;
    if (ctx.flags["device-code"] !== true) {
      throw usageError(
        "login needs --device-code",
        "Run `m365-mail login --device-code`. The password grant (ROPC, the default) needs no login: it signs in on every run.",
      );
    }
    const config = ctx.config();
    const identity = requireIdentity(config);
    const { cache, description } = await openTokenCache(config, { create: true });
    const { deviceCodeTokenProvider } = await import("@m365-mail/auth-device-code");
    const auth = deviceCodeTokenProvider({
      ...identity,
      cloud: config.cloud,
      cache,
      ...(config.ca ? { ca: config.ca } : {}),
      ...(ctx.flags.verbose === true ? { logger: stderrLogger() } : {}),
      onDeviceCode: (info) => {
        if (out.json) {
          out.record({
            type: "device-code",
            userCode: info.userCode,
            verificationUri: info.verificationUri,
            expiresAt: info.expiresAt.toISOString(),
            message: info.message,
          });
          return;
        }
        out.err(info.message);
        out.err(
          out.paintErr.dim(
            `Sign in as ${identity.username}. The code expires at ${info.expiresAt.toLocaleTimeString()}; Ctrl-C stops waiting.`,
          ),
        );
      },
    });
    try {
      const graph = tokenInfo(await auth.signIn({ signal: ctx.signal }));
      // The second resource comes from the refresh token: proves the stored sign-in serves both.
      let outlook: ReturnType<typeof tokenInfo> | undefined;
      let outlookError: unknown;
      try {
        outlook = tokenInfo(await auth.getAccessToken("outlook", { signal: ctx.signal }));
      } catch (error) {
        outlookError = error;
      }
      if (out.json) {
        out.record({
          type: "signed-in",
          username: identity.username,
          tokenCache: description,
          tokens: { graph, ...(outlook ? { outlook } : {}) },
          ...(outlookError ? { outlookError: errorJson(outlookError) } : {}),
        });
      } else {
        out.out(out.paint.ok(`Signed in as ${identity.username}.`));
        out.out(`The sign-in is stored in ${description}.`);
        out.out("Graph token:");
        for (const line of tokenLines(graph, out.paint)) out.out(line);
        if (outlook) {
          out.out("Outlook token (SMTP, IMAP, POP3):");
          for (const line of tokenLines(outlook, out.paint)) out.out(line);
        } else {
          out.warn(`no Outlook token: ${errorJson(outlookError).message as string}`);
        }
        out.out(
          out.paint.dim(
            "Use it with --auth device-code or M365_AUTH=device-code (commands, the server; the bridge has `m365-mail bridge login`).",
          ),
        );
      }
      return EXIT.OK;
    } finally {
      await auth.dispose();
    }
  },
};
