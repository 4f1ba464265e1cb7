import { chmod, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type Command, type CommandContext, integerFlag, stringFlag } from "../command.js";
import { dovecotStatus, emulatorEnv, loadEmulator, startFullEmulator } from "../emulator-runner.js";
import { EXIT } from "../exit-codes.js";

const shellQuote = (value: string) =>
  /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;

export const emulatorCommand: Command = {
  name: "emulator",
  summary: "run the offline Microsoft 365 (Entra ID, Graph, SMTP, IMAP/POP3) until Ctrl-C",
  options: {
    directory: { type: "string" },
    "data-dir": { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    "no-dovecot": { type: "boolean" },
    "write-env": { type: "string" },
    "print-directory": { type: "boolean" },
  },
  help: `Usage: m365-mail emulator [--directory <file>] [--port 44443] [--data-dir <dir>] [--write-env <file>]

Starts the emulator with every part — Entra ID (ROPC), Microsoft Graph, SMTP submission, and IMAP/POP3
through Dovecot when it is installed — prints how to point m365-mail and other clients at it, and
runs until Ctrl-C.

Options:
  --directory <file>   tenants, app registrations and users as JSON (default: the demo tenant contoso.com);
                       --print-directory prints the demo directory as a starting point
  --port <n>           Entra ID's HTTPS port (default 44443; 0 = any free port). Other parts use free ports.
  --host <address>     interface to listen on (default 127.0.0.1)
  --data-dir <dir>     CA, signing key, mailboxes (default $M365_EMULATOR_HOME or ./.m365-emulator)
  --no-dovecot         do not start IMAP/POP3
  --write-env <file>   also write the settings as a .env file: m365-mail --env-file <file> doctor
  --json               the endpoints and settings as JSON (then runs until stopped)`,
  async run(ctx: CommandContext): Promise<number> {
    const { out, flags } = ctx;
    const { DEMO_PASSWORD, defaultDirectory } = await loadEmulator();
    if (flags["print-directory"] === true) {
      out.data(defaultDirectory());
      return EXIT.OK;
    }
    const directory = stringFlag(flags, "directory");
    const progress = out.progress("starting the emulator");
    const emulator = await startFullEmulator({
      ...(directory ? { directory } : {}),
      ...(stringFlag(flags, "data-dir") ? { dataDir: stringFlag(flags, "data-dir")! } : {}),
      ...(stringFlag(flags, "host") ? { host: stringFlag(flags, "host")! } : {}),
      port: integerFlag(flags, "port", 44443, 0),
      dovecot: flags["no-dovecot"] !== true,
      verbose: flags.verbose === true,
    }).finally(() => progress.stop());
    try {
      const demo = directory === undefined;
      const env = emulatorEnv(emulator, demo ? "support@contoso.com" : undefined);
      if (demo) {
        // The demo password goes into a file, as a real password should: nothing secret on screen.
        const passwordFile = join(emulator.dataDir, "demo-password");
        await writeFile(passwordFile, `${DEMO_PASSWORD}\n`, { mode: 0o600 });
        await chmod(passwordFile, 0o600);
        env.M365_PASSWORD_FILE = passwordFile;
      }
      const envFile = stringFlag(flags, "write-env");
      if (envFile) {
        const text = Object.entries(env)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join("\n");
        await writeFile(
          envFile,
          `# m365-mail emulator settings (m365-mail --env-file ${envFile} …)\n${text}\n`,
          { mode: 0o600 },
        );
      }
      const cloud = emulator.cloud;
      const parts = Object.fromEntries(
        Object.entries(emulator.parts).map(([name, info]) => [
          name,
          info.skipped ? { skipped: info.skipped } : { running: true },
        ]),
      );
      const endpoints = {
        entra: emulator.authority,
        graph: cloud.graphOrigin ? `${cloud.graphOrigin}/v1.0` : undefined,
        smtp:
          emulator.parts.smtp && !emulator.parts.smtp.skipped
            ? `${cloud.smtp.host}:${cloud.smtp.port}`
            : undefined,
        imap:
          emulator.parts.dovecot && !emulator.parts.dovecot.skipped
            ? `${cloud.imap.host}:${cloud.imap.port}`
            : undefined,
        pop3:
          emulator.parts.dovecot && !emulator.parts.dovecot.skipped
            ? `${cloud.pop3.host}:${cloud.pop3.port}`
            : undefined,
        admin: `${emulator.authorityHost}/_admin/`,
      };
      if (out.json) {
        out.data({
          ok: true,
          tenantId: emulator.tenantId,
          clientId: emulator.clientId,
          caPath: emulator.caPath,
          dataDir: emulator.dataDir,
          endpoints,
          parts,
          env,
          ...(envFile ? { envFile } : {}),
        });
      } else {
        const p = out.paint;
        const line = (name: string, value: string) => out.out(`  ${name.padEnd(10)} ${value}`);
        out.out(`${p.bold("m365 emulator running")} ${p.dim("(Ctrl-C stops it)")}`);
        line("Entra ID", endpoints.entra);
        line("Graph", endpoints.graph ?? p.dim("not running"));
        line("SMTP", endpoints.smtp ? `${endpoints.smtp} (STARTTLS, AUTH XOAUTH2)` : p.dim("not running"));
        const dovecot = emulator.parts.dovecot;
        const install = (await dovecotStatus()).install;
        const imapPop = (endpoint: string | undefined) =>
          endpoint
            ? `${endpoint} (TLS, XOAUTH2)`
            : dovecot?.skipped
              ? p.warn(`skipped: Dovecot is not installed (${install})`)
              : p.dim("not running (--no-dovecot)");
        line("IMAP", imapPop(endpoints.imap));
        line("POP3", imapPop(endpoints.pop3));
        line("CA", emulator.caPath);
        line("admin API", endpoints.admin);
        line("tenant", emulator.tenantId);
        line("client id", emulator.clientId);
        if (demo) {
          line(
            "users",
            `support@contoso.com, alice@contoso.com, shared@ (shared mailbox); failure cases mfa@, locked@, disabled@, expired@, unassigned@, nosmtp@, noimap@, nopop@ — password in ${env.M365_PASSWORD_FILE}`,
          );
        }
        out.out();
        const readsItself = envFile !== undefined && resolve(envFile) === resolve(".env");
        const shortcut = !envFile
          ? ""
          : readsItself
            ? " (or run m365-mail in this folder: it reads ./.env)"
            : ` (or: m365-mail --env-file ${envFile} doctor)`;
        out.out(p.bold("Point m365-mail at it") + shortcut);
        for (const [key, value] of Object.entries(env)) out.out(`  export ${key}=${shellQuote(value)}`);
        out.out(`  m365-mail doctor${endpoints.pop3 ? " --pop3" : ""}`);
        out.out(
          `  MFA user: M365_USERNAME=mfa@contoso.com m365-mail login --device-code, then approve at ${emulator.authorityHost}/devicelogin`,
        );
        out.out();
        out.out(p.bold("Other clients"));
        out.out(`  trust the CA ${emulator.caPath} (Node: NODE_EXTRA_CA_CERTS=${emulator.caPath})`);
        out.out(`  ROPC token endpoint ${emulator.authority}/oauth2/v2.0/token, scopes as at Microsoft`);
        out.out(
          `  (https://graph.microsoft.com/…, https://outlook.office.com/…); msal needs knownAuthorities`,
        );
        out.out(
          `  [${new URL(emulator.authorityHost).host}] and authorityMetadata from ${emulator.authority}/v2.0/.well-known/openid-configuration`,
        );
      }
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      out.err("stopping the emulator…");
      return EXIT.OK;
    } finally {
      await emulator.stop();
    }
  },
};
