import { type Command, type CommandContext, stringFlag } from "../command.js";
import { type DoctorReport, runDoctor } from "../doctor-checks.js";
import { printDoctorHeader, printDoctorReport } from "../doctor-render.js";
import { EXIT } from "../exit-codes.js";

export const doctorCommand: Command = {
  name: "doctor",
  summary: "check sign-in and every permission of the set-up guide, with the setting to change for each ✗",
  options: {
    pop3: { type: "boolean" },
    "send-test": { type: "string" },
  },
  help: `Usage: m365-mail doctor [--pop3] [--send-test <address>] [--json]

Walks the set-up guide's permission table and says, per capability, whether it works:
  1. Get an auth token via the ROPC flow   User.Read              (password grant, GET /me)
  2. Read the user's calendar              Calendars.Read         (GET /me/calendarView)
  3. Read the user's mailFolders           Mail.Read              (GET /me/mailFolders/inbox)
  4. Send mail with the Graph API          Mail.Send              (the token's scp; a real send with --send-test)
  5. Send mail via SMTP auth'ed w/XOAUTH2  SMTP.Send              (AUTH XOAUTH2 + a command)
  6. Use IMAP authenticated with XOAUTH2   IMAP.AccessAsUser.All  (AUTHENTICATE + EXAMINE INBOX)
  7. Use POP3 authenticated with XOAUTH2   POP.AccessAsUser.All   (only with --pop3)
Each ✗ names the setting to change. The tokens' claims are shown (audience, scopes, expiry), never a token.

Options:
  --pop3                  also check POP3
  --send-test <address>   send one real test message over Graph and one over SMTP to <address>
  --json                  the report as JSON

Exit code: 0 when every check passed, 1 when one failed, 2 for a configuration error.`,
  async run(ctx: CommandContext): Promise<number> {
    const { out } = ctx;
    const config = ctx.config();
    const sendTest = stringFlag(ctx.flags, "send-test");
    const pop3 = ctx.flags.pop3 === true;
    const session = await ctx.session({
      transports: pop3 ? ["graph", "smtp", "imap", "pop3"] : ["graph", "smtp", "imap"],
    });
    if (!out.json) printDoctorHeader(config, session.auth.username, out);
    const progress = out.json ? undefined : out.progress("starting");
    let report: DoctorReport;
    try {
      report = await runDoctor(config, session, {
        pop3,
        ...(sendTest ? { sendTest } : {}),
        signal: ctx.signal,
        onStep: (label) => progress?.update(label),
      });
    } finally {
      progress?.stop();
      await session.close().catch(() => {});
    }
    if (out.json) out.data(report);
    else printDoctorReport(report, out);
    return report.ok ? EXIT.OK : EXIT.FAILED;
  },
};
