/**
 * `pnpm bench token-cache`: how fast a warm getAccessToken is compared with msal's own
 * acquireTokenSilent on the same cache, and how many token requests 100 concurrent cold callers
 * for two resources cause. Runs against the emulator; imports the built packages.
 *
 * Ends with one line: RESULT token-cache ratio=<msal µs per call / ours> requests=<n> ours_us=<..> msal_us=<..>
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { DEMO_PASSWORD, startEmulator } from "../packages/emulator/dist/index.js";

const OURS_ITERATIONS = 20_000;
const MSAL_ITERATIONS = 2_000;
const COLD_CALLERS = 100;
const USER = "support@contoso.com";

async function timePerCall(iterations: number, call: () => Promise<unknown>): Promise<number> {
  // Warm-up so both sides are measured after JIT compilation.
  for (let i = 0; i < Math.min(1000, iterations / 10); i++) await call();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) await call();
  return ((performance.now() - started) * 1000) / iterations;
}

const dataDir = await mkdtemp(join(tmpdir(), "bench-token-cache-"));
const emu = await startEmulator({ dataDir });
const tokenRequests = () => emu.admin.counts()["entra.token"] ?? 0;
try {
  // Explicit scopes: msal finds its cached access token by the requested scopes, and ".default"
  // never matches the granted list Entra ID returns (msal would go to the network on every call).
  const graphScopes = ["User.Read", "Mail.Read"];
  const base = {
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    username: USER,
    password: DEMO_PASSWORD,
    cloud: emu.cloud,
    ca: emu.caPem,
    engine: "msal" as const,
    scopes: { graph: graphScopes },
  };

  const provider = ropcTokenProvider(base);
  const warm = await provider.getAccessToken("graph");
  const pca = provider.msalApplication;
  if (!pca) throw new Error("the msal engine exposes no msalApplication");
  const [account] = await pca.getTokenCache().getAllAccounts();
  if (!account) throw new Error("msal has no account after sign-in");
  const fullScopes = graphScopes.map((s) => `${emu.cloud.graphEndpoint}/${s}`);
  const silent = () => pca.acquireTokenSilent({ account, scopes: fullScopes });
  const check = await silent();
  if (!check.fromCache || check.accessToken !== warm.token) {
    throw new Error(
      "msal's acquireTokenSilent did not serve the cached token: the comparison would be unfair",
    );
  }

  const before = tokenRequests();
  const oursUs = await timePerCall(OURS_ITERATIONS, () => provider.getAccessToken("graph"));
  const msalUs = await timePerCall(MSAL_ITERATIONS, silent);
  const warmRequests = tokenRequests() - before;
  await provider.dispose();

  // Cold: a fresh provider, 100 callers at once, half for Graph and half for Outlook.
  const cold = ropcTokenProvider({ ...base, scopes: undefined });
  const coldBefore = tokenRequests();
  const counts0 = emu.admin.counts();
  const results = await Promise.all(
    Array.from({ length: COLD_CALLERS }, (_, i) => cold.getAccessToken(i % 2 === 0 ? "graph" : "outlook")),
  );
  const requests = tokenRequests() - coldBefore;
  const counts1 = emu.admin.counts();
  const delta = (name: string) => (counts1[name] ?? 0) - (counts0[name] ?? 0);
  await cold.dispose();

  const ratio = msalUs / oursUs;
  console.log(`warm getAccessToken (ours, ${OURS_ITERATIONS} calls):        ${oursUs.toFixed(3)} µs/call`);
  console.log(
    `warm acquireTokenSilent (msal, ${MSAL_ITERATIONS} calls, same PCA): ${msalUs.toFixed(3)} µs/call`,
  );
  console.log(`token requests during the warm loops: ${warmRequests}`);
  console.log(
    `${COLD_CALLERS} concurrent cold callers (graph + outlook): ${requests} token requests ` +
      `(password ${delta("entra.token.password")}, refresh ${delta("entra.token.refresh_token")}), ` +
      `${new Set(results.map((r) => r.token)).size} distinct tokens`,
  );
  console.log(
    `RESULT token-cache ratio=${ratio.toFixed(1)} requests=${requests} ours_us=${oursUs.toFixed(3)} msal_us=${msalUs.toFixed(3)}`,
  );
} finally {
  await emu.stop();
  await rm(dataDir, { recursive: true, force: true });
}
