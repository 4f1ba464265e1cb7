// Interim demo (issue 2): sign in against the local emulator and show what the tokens are for.
// The CLI's `m365-mail demo` replaces it once the transports are in.

import { ropcTokenProvider } from "@m365-mail/auth-ropc";
import { summarizeToken } from "@m365-mail/core";
import { DEMO_PASSWORD, startEmulator } from "@m365-mail/emulator";

const emulator = await startEmulator();
console.log(`emulator: Entra ID at ${emulator.authorityHost}, CA ${emulator.caPath}`);
try {
  for (const engine of ["msal", "http"] as const) {
    const auth = ropcTokenProvider({
      tenantId: emulator.tenantId,
      clientId: emulator.clientId,
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      authorityHost: emulator.authorityHost,
      ca: emulator.caPem,
      engine,
    });
    for (const resource of ["graph", "outlook"] as const) {
      const token = await auth.getAccessToken(resource);
      const s = summarizeToken(token.token);
      console.log(
        `✓ ${engine.padEnd(4)} ${resource.padEnd(7)} aud=${s?.audience} user=${s?.user} expires=${token.expiresAt.toISOString()}\n` +
          `       scopes: ${s?.scopes.join(" ")}`,
      );
    }
    await auth.dispose?.();
  }
  const counts = Object.fromEntries(
    Object.entries(emulator.admin.counts()).filter(([k]) => !k.includes(":")),
  );
  console.log(`token requests: ${JSON.stringify(counts)}`);
} finally {
  await emulator.stop();
}
