import { M365MailError, safeLogger } from "@m365-mail/core";
import type { EmulatorContext } from "../context.js";
import type { EmulatorPart, PartInfo } from "../part.js";
import { createMailStore, type MailStore } from "../store/mail-store.js";
import type { DovecotProtocol } from "./dovecot-config.js";
import { type SessionFront, startSessionFront } from "./session-front.js";
import { type DovecotServer, type StartDovecotOptions, startDovecot } from "./start-dovecot.js";

export interface DovecotPartOptions
  extends Omit<StartDovecotOptions, "dataDir" | "store" | "introspectionUrl" | "tls" | "host" | "logger"> {
  /** @default createMailStore({ root: ctx.dataDir }) */
  store?: MailStore;
  /** @default `${ctx.authorityHost}/introspect/<protocol>` — the Entra part's endpoint */
  introspectionUrl?: (protocol: DovecotProtocol) => string;
}

/** The IMAP/POP3 part as the emulator runs it. */
export interface DovecotPart extends EmulatorPart {
  readonly name: "dovecot";
  /**
   * The running server as clients see it: `imapPort`/`pop3Port` are the Exchange-shaped front's (one-line
   * POP3 AUTH refused, a session ended with its token); undefined until started or when Dovecot is missing.
   */
  readonly server: DovecotServer | undefined;
  /** Ends a user's IMAP/POP3 sessions, e.g. when their token expires; false when none was open. */
  kick(upn: string): Promise<boolean>;
}

/**
 * IMAP (993-style) and POP3 (995-style) over the mailbox store, served by Debian's Dovecot, for
 * `startEmulator({ parts: [dovecotPart()] })`. Without Dovecot installed the part is skipped with the
 * install command. Revoking a user's tokens (admin API) ends their sessions.
 */
export function dovecotPart(options: DovecotPartOptions = {}): DovecotPart {
  let server: DovecotServer | undefined;
  let unsubscribe: (() => void) | undefined;
  let fronts: SessionFront[] = [];
  return {
    name: "dovecot",
    get server() {
      return server;
    },
    async start(ctx: EmulatorContext): Promise<PartInfo> {
      const line = (message: string, data?: Record<string, unknown>) =>
        ctx.log(data ? `${message} ${JSON.stringify(data)}` : message);
      const log = safeLogger({ debug: line, info: line, warn: line, error: line });
      const { store, introspectionUrl, ...rest } = options;
      // Dovecot listens on ports of its own; the requested ones belong to the fronts clients talk to.
      const { imapPort, pop3Port, ...dovecotOptions } = rest;
      const dovecot = await startDovecot({
        ...dovecotOptions,
        dataDir: ctx.dataDir,
        store: store ?? createMailStore({ root: ctx.dataDir }),
        introspectionUrl: introspectionUrl ?? ((protocol) => `${ctx.authorityHost}/introspect/${protocol}`),
        tls: ctx.tls,
        host: ctx.host,
        logger: log,
      });
      // Each session's token expiry is the front's business (it sees the token); revocation ends
      // every session of the user, which only Dovecot can do.
      const front = (protocol: "imap" | "pop3", port: number | undefined, backendPort: number) =>
        startSessionFront({
          protocol,
          host: dovecot.host,
          ...(port !== undefined ? { port } : {}),
          tls: ctx.tls,
          backendPort,
          log,
          count: (name) => ctx.counters.increment(name),
          faults: ctx.faults,
        });
      try {
        fronts = [
          await front("imap", imapPort, dovecot.imapPort),
          await front("pop3", pop3Port, dovecot.pop3Port),
        ];
      } catch (error) {
        await Promise.all(fronts.map((f) => f.close()));
        fronts = [];
        await dovecot.stop();
        throw error;
      }
      const [imapFront, pop3Front] = fronts as [SessionFront, SessionFront];
      server = {
        host: dovecot.host,
        imapPort: imapFront.port,
        pop3Port: pop3Front.port,
        // The STARTTLS/STLS ports (when asked for) lead straight to Dovecot, without the front.
        imapStartTlsPort: dovecot.imapStartTlsPort,
        pop3StartTlsPort: dovecot.pop3StartTlsPort,
        lmtpPort: dovecot.lmtpPort,
        pid: dovecot.pid,
        configDir: dovecot.configDir,
        logPath: dovecot.logPath,
        kick: (upn) => dovecot.kick(upn),
        stop: async () => {
          await Promise.all(fronts.map((f) => f.close()));
          fronts = [];
          await dovecot.stop();
        },
      };
      const running = server;
      const offRevoked = ctx.onTokensRevoked(
        (upn) =>
          void running
            .kick(upn)
            .catch((error: unknown) => log.warn("ending sessions (revocation) failed", { upn, error })),
      );
      unsubscribe = () => offRevoked();
      const env: Record<string, string> = {
        M365_IMAP_HOST: running.host,
        M365_IMAP_PORT: String(running.imapPort),
        M365_POP3_HOST: running.host,
        M365_POP3_PORT: String(running.pop3Port),
      };
      return {
        cloud: {
          imap: { host: running.host, port: running.imapPort },
          pop3: { host: running.host, port: running.pop3Port },
        },
        env,
        imapPort: running.imapPort,
        pop3Port: running.pop3Port,
        logPath: running.logPath,
      };
    },
    async stop() {
      unsubscribe?.();
      unsubscribe = undefined;
      const running = server;
      server = undefined;
      await running?.stop();
    },
    kick(upn) {
      if (!server) {
        return Promise.reject(
          new M365MailError("NOT_SUPPORTED", "the IMAP/POP3 part is not running", {
            source: "emulator-dovecot",
            hint: "Pass dovecotPart() to startEmulator({ parts }) and install Dovecot.",
          }),
        );
      }
      return server.kick(upn);
    },
  };
}
