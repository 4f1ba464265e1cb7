import { M365MailError, safeLogger } from "@m365-mail/core";
import type { EmulatorContext } from "../context.js";
import type { EmulatorPart, PartInfo } from "../part.js";
import { createMailStore, type MailStore } from "../store/mail-store.js";
import type { DovecotProtocol } from "./dovecot-config.js";
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
  /** The running server; undefined until started (or when Dovecot is missing). */
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
  // Exchange ends an IMAP/POP3 session when its token expires (`BYE Session invalidated -
  // AccessTokenExpired`); Dovecot cannot tell which session used which token, so at each token's
  // expiry the user's sessions are kicked and clients reconnect with a fresh token.
  const expiryTimers = new Map<string, NodeJS.Timeout>();
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
      server = await startDovecot({
        ...rest,
        dataDir: ctx.dataDir,
        store: store ?? createMailStore({ root: ctx.dataDir }),
        introspectionUrl: introspectionUrl ?? ((protocol) => `${ctx.authorityHost}/introspect/${protocol}`),
        tls: ctx.tls,
        host: ctx.host,
        logger: log,
      });
      const running = server;
      const kick = (upn: string, why: string) =>
        running
          .kick(upn)
          .catch((error: unknown) => log.warn(`ending sessions (${why}) failed`, { upn, error }));
      const offRevoked = ctx.onTokensRevoked((upn) => void kick(upn, "revocation"));
      const offLogin = ctx.onProtocolLogin(({ upn, expiresAt }) => {
        const key = `${upn.toLowerCase()} ${expiresAt.getTime()}`;
        if (expiryTimers.has(key)) return;
        const timer = setTimeout(
          () => {
            expiryTimers.delete(key);
            ctx.counters.increment("dovecot.kick.token-expired");
            void kick(upn, "token expired");
          },
          Math.max(0, expiresAt.getTime() - Date.now()),
        );
        timer.unref();
        expiryTimers.set(key, timer);
      });
      unsubscribe = () => {
        offRevoked();
        offLogin();
        for (const timer of expiryTimers.values()) clearTimeout(timer);
        expiryTimers.clear();
      };
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
