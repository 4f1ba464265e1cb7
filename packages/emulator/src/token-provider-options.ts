import { DEMO_PASSWORD } from "./default-directory.js";
import type { Emulator } from "./emulator.js";
import type { EmulatorCloud } from "./part.js";

/** What a token provider (e.g. `ropcTokenProvider` of `@m365-mail/auth-ropc`) needs to sign in to an emulator. */
export interface EmulatorTokenProviderOptions {
  tenantId: string;
  clientId: string;
  username: string;
  password: string;
  /** Microsoft's scope URIs, the emulator's hosts. */
  cloud: EmulatorCloud;
  authorityHost: string;
  /** The emulator's CA certificate (PEM), to trust its TLS. */
  ca: string;
}

/**
 * Sign-in settings for `username` with the demo password, on the emulator's first tenant and app:
 * `ropcTokenProvider({ ...tokenProviderOptions(emulator, "alice@contoso.com"), engine: "http" })`.
 * @param username @default "support@contoso.com"
 */
export function tokenProviderOptions(
  emulator: Pick<Emulator, "tenantId" | "clientId" | "cloud" | "authorityHost" | "caPem">,
  username = "support@contoso.com",
): EmulatorTokenProviderOptions {
  return {
    tenantId: emulator.tenantId,
    clientId: emulator.clientId,
    username,
    password: DEMO_PASSWORD,
    cloud: emulator.cloud,
    authorityHost: emulator.authorityHost,
    ca: emulator.caPem,
  };
}
