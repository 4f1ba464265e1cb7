import type { CloudPreset } from "@m365-mail/core";
import type { EmulatorContext } from "./context.js";

/** The emulator's cloud preset: Microsoft's resource URIs for scopes, the emulator's hosts for traffic. */
export type EmulatorCloud = CloudPreset & {
  /** Origin the Graph part serves `/v1.0` on (scopes still use `graphEndpoint`). */
  readonly graphOrigin?: string;
};

/** What a part reports once started: its ports and anything clients need. */
export interface PartInfo {
  /** Cloud fields this part serves, e.g. `{ smtp: { host: "127.0.0.1", port: 2587 } }` or `{ graphOrigin }`. */
  cloud?: Partial<{ -readonly [K in keyof EmulatorCloud]: EmulatorCloud[K] }>;
  /** Extra environment variables for `emulator.env()`, e.g. `M365_SMTP_PORT`. */
  env?: Record<string, string>;
  /** Set by the emulator when the part could not start for a reason the user can fix (e.g. Dovecot missing). */
  skipped?: string;
  [key: string]: unknown;
}

/**
 * A piece of the emulator (Graph, SMTP, Dovecot) started after the Entra part, with the shared context.
 * Throw an M365MailError with code NOT_SUPPORTED from `start` when a prerequisite is missing: the
 * emulator then reports the part as skipped and runs the rest.
 */
export interface EmulatorPart {
  readonly name: string;
  start(context: EmulatorContext): Promise<PartInfo>;
  stop(): Promise<void>;
  /** Runtime settings shown by `GET /_admin/parts/<name>` (e.g. the SMTP part's limits). */
  settings?(): Record<string, unknown>;
  /** Changes them: `PATCH /_admin/parts/<name>` with a JSON body. */
  updateSettings?(patch: Record<string, unknown>): Record<string, unknown>;
}
