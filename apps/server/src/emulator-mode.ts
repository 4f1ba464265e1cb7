import { join } from "node:path";
import type { Logger } from "@m365-mail/core";
import {
  DEMO_PASSWORD,
  dovecotPart,
  type Emulator,
  graphPart,
  smtpPart,
  startEmulator,
} from "@m365-mail/emulator";
import type { M365Settings } from "./config.js";

export const EMULATOR_USER = "support@contoso.com";

/**
 * The offline Microsoft 365 in this process (Entra ID, Graph, SMTP, and IMAP when Dovecot is
 * installed), signed in as its demo user.
 */
export async function startLocalEmulator(
  logger: Logger,
): Promise<{ emulator: Emulator; m365: M365Settings; imap: boolean }> {
  const dataDir = process.env.M365_EMULATOR_HOME ?? join(process.cwd(), ".m365-emulator");
  const emulator = await startEmulator({ dataDir, parts: [graphPart(), smtpPart(), dovecotPart()] });
  const skipped = emulator.parts.dovecot?.skipped;
  if (skipped) logger.warn(`emulator: IMAP is off (${skipped})`);
  return {
    emulator,
    imap: !skipped,
    m365: {
      tenantId: emulator.tenantId,
      clientId: emulator.clientId,
      username: EMULATOR_USER,
      password: DEMO_PASSWORD,
      cloud: emulator.cloud,
      engine: "msal",
      federation: "auto",
      ca: emulator.caPem,
    },
  };
}
