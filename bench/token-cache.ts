/**
 * `pnpm bench token-cache`: a warm `getAccessToken` (ours: a Map lookup in front of the engine) against
 * msal's own `acquireTokenSilent` on the same PublicClientApplication and the same cached token, and how
 * many token requests 100 concurrent cold callers for two resources cause. Runs against the emulator.
 *
 * What is compared, and why it is fair: both sides answer the same question (a valid Graph token for the
 * same account and scopes) from memory, without the network — checked before measuring (msal's answer
 * must be `fromCache` and the same token) and after (no token request during the loops). Both make the
 * same number of calls: ROUNDS rounds of CALLS calls each, the two sides back to back in every round,
 * alternating who goes first (a drift of the machine's load cancels out), after a warm-up of each (JIT).
 * The ratio is the median of the rounds' msal ÷ ours time per call, printed with its spread.
 *
 * Ends with one line: RESULT token-cache ratio=<median msal µs per call ÷ ours> requests=<n> ours_us=<..> msal_us=<..>
 * Imports the built packages (`pnpm bench` builds them first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ropcTokenProvider } from "../packages/auth-ropc/dist/index.js";
import { DEMO_PASSWORD, startEmulator } from "../packages/emulator/dist/index.js";

const ROUNDS = 15;
const CALLS = 2_000; // per side and round: the same number for both
const WARMUP_CALLS = 1_000;
const COLD_CALLERS = 100;
const USER = "support@contoso.com";

/** µs per call over `calls` awaited calls, one after the other. */
async function timePerCall(calls: number, call: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < calls; i++) await call();
  return ((performance.now() - started) * 1000) / calls;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

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

  const ours = () => provider.getAccessToken("graph");
  await timePerCall(WARMUP_CALLS, ours);
  await timePerCall(WARMUP_CALLS, silent);
  const before = tokenRequests();
  const oursRounds: number[] = [];
  const msalRounds: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let oursRound: number;
    let msalRound: number;
    if (round % 2 === 0) {
      oursRound = await timePerCall(CALLS, ours);
      msalRound = await timePerCall(CALLS, silent);
    } else {
      msalRound = await timePerCall(CALLS, silent);
      oursRound = await timePerCall(CALLS, ours);
    }
    oursRounds.push(oursRound);
    msalRounds.push(msalRound);
    ratios.push(msalRound / oursRound);
  }
  const warmRequests = tokenRequests() - before;
  if (warmRequests !== 0) {
    throw new Error(
      `${warmRequests} token requests during the warm loops: one side was not served from memory`,
    );
  }
  const oursUs = median(oursRounds);
  const msalUs = median(msalRounds);
  const ratio = median(ratios);
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

  const sortedRatios = [...ratios].sort((a, b) => a - b);
  console.log(
    `warm getAccessToken (ours):             median ${oursUs.toFixed(3)} µs/call (${ROUNDS} rounds × ${CALLS} calls)`,
  );
  console.log(
    `warm acquireTokenSilent (msal, same PCA): median ${msalUs.toFixed(3)} µs/call (${ROUNDS} rounds × ${CALLS} calls)`,
  );
  console.log(
    `msal ÷ ours per round: min ${sortedRatios[0]!.toFixed(1)}, median ${ratio.toFixed(1)}, max ${sortedRatios.at(-1)!.toFixed(1)}`,
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
