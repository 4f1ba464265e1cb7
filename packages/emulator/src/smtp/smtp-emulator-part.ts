import type { EmulatorContext } from "../context.js";
import type { EmulatorPart, PartInfo } from "../part.js";
import { createMailStore } from "../store/index.js";
import { withLateSentItems } from "../store/late-sent-items.js";
import { DEFAULT_SMTP_LIMITS, type SmtpLimits } from "./smtp-limits.js";
import { type SmtpMailSink, type SmtpPart, type SmtpPartStats, startSmtpPart } from "./smtp-part.js";

export interface SmtpPartOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** Where accepted mail goes. @default the emulator's mailbox store in its data folder */
  store?: SmtpMailSink;
  /** Exchange Online's limits by default: 3 connections per mailbox, 30 messages a minute (delayed). */
  limits?: Partial<SmtpLimits>;
}

/** The SMTP part as the emulator runs it; the limit methods work once it has started. */
export interface SmtpEmulatorPart extends EmulatorPart {
  readonly name: "smtp";
  /** Port it listens on (0 until started). */
  readonly port: number;
  limits(): Readonly<SmtpLimits>;
  /** E.g. `{ messagesPerWindow: 0 }` lifts the rate limit (benchmarks). Applies to the next command. */
  setLimits(patch: Partial<SmtpLimits>): Readonly<SmtpLimits>;
  stats(): SmtpPartStats;
  resetStats(): void;
  /** Admin API hook: GET returns the limits, PATCH changes them. */
  settings(): Record<string, unknown>;
  updateSettings(patch: Record<string, unknown>): Record<string, unknown>;
}

/**
 * SMTP submission like smtp.office365.com:587 for `startEmulator({ parts: [smtpPart()] })`: STARTTLS,
 * AUTH XOAUTH2, Exchange Online's replies and limits; accepted mail lands in the mailbox store, readable
 * over Graph, IMAP and POP3.
 */
export function smtpPart(options: SmtpPartOptions = {}): SmtpEmulatorPart {
  let running: SmtpPart | undefined;
  // A restarted part keeps its port, so the cloud preset handed to clients stays right.
  let lastPort = options.port;
  let pending: Partial<SmtpLimits> = { ...options.limits };
  const need = (): SmtpPart => {
    if (!running) throw new Error("the SMTP part has not started (pass it to startEmulator({ parts }))");
    return running;
  };
  return {
    name: "smtp",
    get port() {
      return running?.port ?? 0;
    },
    async start(ctx: EmulatorContext): Promise<PartInfo> {
      const sink = withLateSentItems(
        options.store ?? createMailStore({ root: ctx.dataDir }),
        ctx.faults,
        "smtp",
      );
      running = await startSmtpPart(ctx, { port: lastPort, sink, limits: pending });
      lastPort = running.port;
      return {
        cloud: { smtp: { host: running.host, port: running.port } },
        env: { M365_SMTP_HOST: running.host, M365_SMTP_PORT: String(running.port) },
        port: running.port,
      };
    },
    async stop() {
      const part = running;
      running = undefined;
      await part?.close();
    },
    limits: () => (running ? running.limits() : { ...DEFAULT_SMTP_LIMITS, ...pending }),
    setLimits(patch) {
      if (!running) {
        pending = { ...pending, ...patch };
        return { ...DEFAULT_SMTP_LIMITS, ...pending };
      }
      return running.setLimits(patch);
    },
    stats: () => need().stats(),
    resetStats: () => need().resetStats(),
    settings: () => ({ limits: need().limits(), ...need().stats() }),
    updateSettings(patch) {
      const limits = (patch.limits ?? patch) as Partial<SmtpLimits>;
      return { limits: need().setLimits(limits) };
    },
  };
}
