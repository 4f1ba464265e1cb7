import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Logger, M365MailError, readJwtClaims } from "@m365-mail/core";
import { DEMO_PASSWORD, type Emulator, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { freePort } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fileTokenCache } from "../src/cache/file-token-cache.js";
import { memoryTokenCache } from "../src/cache/memory-token-cache.js";
import type { TokenCache } from "../src/cache/token-cache.js";
import {
  type RopcEngine,
  type RopcTokenProviderOptions,
  ropcTokenProvider,
} from "../src/ropc-token-provider.js";

const USER = "support@contoso.com";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator({ prefix: "auth-ropc-emu-", parts: [] });
});
afterAll(() => emu?.stop());

// Everything any provider logged, every error it raised, every secret it received: the log-safety
// test at the end of each engine's suite checks that no secret reached a log line or an error.
const logLines: string[] = [];
const errors: M365MailError[] = [];
const secrets = new Set<string>([DEMO_PASSWORD]);
const capture: Logger = {
  debug: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  info: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  warn: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  error: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
};

/** A memory cache that also records every secret written to it (refresh tokens, msal's blob). */
function spyCache(): TokenCache {
  const inner = memoryTokenCache();
  const collect = (value: unknown): void => {
    if (typeof value === "string") {
      if (value.startsWith("{")) {
        try {
          collect(JSON.parse(value));
          return;
        } catch {}
      }
      secrets.add(value);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        if (k === "secret" && typeof v === "string") secrets.add(v);
        else if (typeof v === "object") collect(v);
      }
    }
  };
  return {
    get: (key) => inner.get(key),
    delete: (key) => inner.delete(key),
    async set(key, entry) {
      collect(entry.value);
      await inner.set(key, entry);
    },
  };
}

const counts = () => emu.admin.counts();
const n = (name: string) => counts()[name] ?? 0;
const passwordGrants = () => n("entra.token.password");
const refreshGrants = () => n("entra.token.refresh_token");
const tokenRequests = () => n("entra.token");

async function failureOf(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "expected a rejection").toBeInstanceOf(M365MailError);
  errors.push(error as M365MailError);
  return error as M365MailError;
}

describe.each<RopcEngine>(["msal", "http"])(
  "ropcTokenProvider (engine %s) against the emulator",
  (engine) => {
    const providers: Array<{ dispose(): Promise<void> }> = [];
    const make = (overrides: Partial<RopcTokenProviderOptions> = {}) => {
      const provider = ropcTokenProvider({
        tenantId: emu.tenantId,
        clientId: emu.clientId,
        username: USER,
        password: DEMO_PASSWORD,
        cloud: emu.cloud,
        ca: emu.caPem,
        engine,
        logger: capture,
        retry: { attempts: 2, baseDelayMs: 5 },
        cache: spyCache(),
        ...overrides,
      } as RopcTokenProviderOptions);
      providers.push(provider);
      return provider;
    };
    const remember = <T extends { token: string }>(token: T): T => {
      secrets.add(token.token);
      return token;
    };

    beforeEach(() => {
      emu.admin.clearFaults();
      emu.admin.setTokenLifetime(3600);
      emu.admin.resetCounts();
    });
    afterAll(async () => {
      await Promise.all(providers.map((p) => p.dispose()));
    });

    it("signs in with one password grant and returns a Graph token for the user", async () => {
      const provider = make();
      const token = remember(await provider.getAccessToken("graph"));
      const claims = readJwtClaims(token.token);
      expect(claims?.upn).toBe(USER);
      expect(claims?.aud).toBe("https://graph.microsoft.com");
      expect(token.resource).toBe("graph");
      expect(token.expiresAt.getTime()).toBeGreaterThan(Date.now() + 3000_000);
      expect(token.scopes.join(" ")).toContain("Mail.Send");
      expect(passwordGrants()).toBe(1);
      expect(tokenRequests()).toBe(1);
    });

    it("gets the second resource with the refresh-token grant, not a second password grant", async () => {
      const provider = make();
      remember(await provider.getAccessToken("graph"));
      const outlook = remember(await provider.getAccessToken("outlook"));
      expect(readJwtClaims(outlook.token)?.aud).toBe("https://outlook.office.com");
      expect(readJwtClaims(outlook.token)?.scp).toContain("IMAP.AccessAsUser.All");
      expect(passwordGrants()).toBe(1);
      expect(refreshGrants()).toBe(1);
      expect(tokenRequests()).toBe(2);
    });

    it("serves a cached token without any request", async () => {
      const provider = make();
      const first = remember(await provider.getAccessToken("graph"));
      const outlook = remember(await provider.getAccessToken("outlook"));
      emu.admin.resetCounts();
      for (let i = 0; i < 50; i++) {
        expect((await provider.getAccessToken("graph")).token).toBe(first.token);
        expect((await provider.getAccessToken("outlook")).token).toBe(outlook.token);
      }
      expect(tokenRequests()).toBe(0);
    });

    it("refreshes a token that nears expiry with the refresh token", async () => {
      emu.admin.setTokenLifetime(2);
      const provider = make();
      const first = remember(await provider.getAccessToken("graph"));
      // A 2 s token is renewed at half-life (the 300 s margin exceeds its lifetime); wait until it has
      // certainly expired, since a slow, loaded machine can spend most of its life on the way back.
      await new Promise((r) => setTimeout(r, Math.max(1200, first.expiresAt.getTime() - Date.now() + 100)));
      const second = remember(await provider.getAccessToken("graph"));
      expect(second.token).not.toBe(first.token);
      expect(second.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
      expect(passwordGrants()).toBe(1);
      expect(refreshGrants()).toBe(1);
    });

    it("forceRefresh skips memory and uses the refresh token", async () => {
      const provider = make();
      const first = remember(await provider.getAccessToken("graph"));
      const forced = remember(await provider.getAccessToken("graph", { forceRefresh: true }));
      expect(forced.token).not.toBe(first.token);
      expect(passwordGrants()).toBe(1);
      expect(refreshGrants()).toBe(1);
      // ...and the forced token is what memory serves afterwards.
      expect((await provider.getAccessToken("graph")).token).toBe(forced.token);
    });

    it.each([
      ["revoked (AADSTS50173)", (upn: string) => emu.admin.revokeTokens(upn), "entra.token.error.50173"],
      [
        "idle-expired (AADSTS700082)",
        (upn: string) => emu.admin.expireRefreshTokens(upn),
        "entra.token.error.700082",
      ],
    ])(
      "a %s refresh token leads to exactly one new password grant",
      async (_label, breakTokens, errorCounter) => {
        const provider = make();
        remember(await provider.getAccessToken("graph"));
        breakTokens(USER);
        emu.admin.resetCounts();
        const token = remember(await provider.getAccessToken("outlook"));
        expect(readJwtClaims(token.token)?.aud).toBe("https://outlook.office.com");
        expect(n(errorCounter)).toBe(1);
        expect(refreshGrants()).toBe(1);
        expect(passwordGrants()).toBe(1);
        expect(tokenRequests()).toBe(2);
        expect(logLines.some((l) => /refresh token was refused/.test(l))).toBe(true);
        // The new session works for the other resource again through the refresh token.
        emu.admin.resetCounts();
        remember(await provider.getAccessToken("graph", { forceRefresh: true }));
        expect(passwordGrants()).toBe(0);
        expect(refreshGrants()).toBe(1);
      },
    );

    const refusals: Array<
      [string, Partial<RopcTokenProviderOptions>, string, RegExp, (() => void)?, (() => void)?]
    > = [
      ["MFA user", { username: "mfa@contoso.com" }, "MFA_REQUIRED", /MFA/],
      ["locked user", { username: "locked@contoso.com" }, "ACCOUNT_LOCKED", /locked/],
      ["disabled user", { username: "disabled@contoso.com" }, "ACCOUNT_DISABLED", /Account enabled/],
      ["expired password", { username: "expired@contoso.com" }, "PASSWORD_EXPIRED", /never to expire/],
      [
        "unassigned user",
        { username: "unassigned@contoso.com" },
        "USER_NOT_ASSIGNED",
        /Users and groups.*unassigned@contoso\.com/,
      ],
      ["federated user", { username: "federated@contoso.com" }, "AUTH_FAILED", /Home Realm Discovery/],
      ["wrong password", { password: "Wrong-Passw0rd!" }, "AUTH_FAILED", /username and password/],
      ["unknown user", { username: "nobody@contoso.com" }, "USER_NOT_FOUND", /UPN/],
      ["wrong tenant", { tenantId: randomUUID() }, "TENANT_NOT_FOUND", /tenant\) ID.*cloud/],
      ["wrong client id", { clientId: randomUUID() }, "APP_NOT_FOUND", /Application \(client\) ID/],
      [
        "public client flows off",
        {},
        "PUBLIC_CLIENT_DISABLED",
        /Allow public client flows/,
        () => emu.admin.updateApp(emu.clientId, { publicClient: false }),
        () => emu.admin.updateApp(emu.clientId, { publicClient: true }),
      ],
      [
        "consent missing",
        {},
        "CONSENT_REQUIRED",
        /Grant admin consent/,
        () =>
          emu.admin.updateApp(emu.clientId, { grantedPermissions: { graph: [], outlook: ["SMTP.Send"] } }),
        () =>
          emu.admin.updateApp(emu.clientId, {
            grantedPermissions: {
              graph: [
                "User.Read",
                "Calendars.Read",
                "Mail.Read",
                "Mail.ReadWrite",
                "Mail.Send",
                "Mail.Read.Shared",
                "Mail.Send.Shared",
              ],
              outlook: ["SMTP.Send", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All"],
            },
          }),
      ],
    ];
    it.each(refusals)(
      "%s → typed error with a hint, not retried",
      async (_label, options, code, hint, arrange, restore) => {
        arrange?.();
        try {
          const provider = make(options);
          const error = await failureOf(provider.getAccessToken("graph"));
          expect(error.code).toBe(code);
          expect(error.hint).toMatch(hint);
          expect(error.retryable).toBe(false);
          expect(error.source).toBe("auth-ropc");
          expect(error.serverCode).toMatch(/^AADSTS\d+$/);
          expect(tokenRequests()).toBe(1);
        } finally {
          restore?.();
        }
      },
    );

    const transient: Array<[string, Parameters<Emulator["admin"]["armFault"]>[0], string, RegExp]> = [
      ["429", { target: "entra", kind: "status429", retryAfterSeconds: 0, times: 3 }, "THROTTLED", /429/],
      ["500", { target: "entra", kind: "status500", times: 3 }, "SERVER_ERROR", /answered 500/],
      ["503 HTML", { target: "entra", kind: "status503", times: 3 }, "SERVER_ERROR", /503 with an HTML page/],
      ["504 HTML", { target: "entra", kind: "status504", times: 3 }, "SERVER_ERROR", /504 with an HTML page/],
      [
        "malformed JSON",
        { target: "entra", kind: "malformedJson", times: 3 },
        "INVALID_RESPONSE",
        /not valid JSON/,
      ],
      [
        "reset connection",
        { target: "entra", kind: "reset", times: 3 },
        "CONNECTION_FAILED",
        /closed before a complete answer/,
      ],
      [
        "200 without token",
        { target: "entra", kind: "emptyToken", times: 3 },
        "INVALID_RESPONSE",
        /without an access token/,
      ],
      [
        "slow answer",
        { target: "entra", kind: "delay", delayMs: 4000, times: 3 },
        "TIMEOUT",
        /within 1000 ms/,
      ],
    ];
    it.each(transient)(
      "%s → retried, then a retryable error with a clear message",
      async (_label, fault, code, message) => {
        emu.admin.armFault({ ...fault, path: "/oauth2/v2.0/token" });
        // 1 s, not less: on a loaded machine a new TLS connection alone can take a few hundred ms, and a
        // try that times out before its request arrives leaves its fault armed.
        const provider = make({ timeoutMs: 1000 });
        const error = await failureOf(provider.getAccessToken("graph"));
        expect(error.code).toBe(code);
        expect(error.retryable).toBe(true);
        expect(error.message).toMatch(message);
        expect(error.message).not.toMatch(/<html|access_tok/i);
        // 1 try + 2 retries consumed the three armed faults; the next call goes through.
        await expect.poll(() => emu.admin.faults()).toEqual([]);
        expect(n(`entra.fault.${fault.kind}`)).toBe(3);
        remember(await provider.getAccessToken("graph"));
      },
    );

    it("recovers from one 429 by retrying (msal's throttle cache never blocks the retry)", async () => {
      emu.admin.armFault({
        target: "entra",
        kind: "status429",
        retryAfterSeconds: 0,
        path: "/oauth2/v2.0/token",
      });
      const provider = make();
      remember(await provider.getAccessToken("graph"));
      expect(n("entra.fault.status429")).toBe(1);
      expect(passwordGrants()).toBe(1);
      // The same request again (forced) is not blocked for 60 s either.
      emu.admin.armFault({
        target: "entra",
        kind: "status429",
        retryAfterSeconds: 0,
        path: "/oauth2/v2.0/token",
      });
      remember(await provider.getAccessToken("outlook"));
      remember(await provider.getAccessToken("outlook", { forceRefresh: true }));
    });

    it("a refusing host is a retryable CONNECTION_FAILED", async () => {
      const port = await freePort();
      const provider = make({ cloud: { ...emu.cloud, authorityHost: `https://127.0.0.1:${port}` } });
      const error = await failureOf(provider.getAccessToken("graph"));
      expect(error.code).toBe("CONNECTION_FAILED");
      expect(error.retryable).toBe(true);
      expect(error.message).toMatch(/could not connect \(ECONNREFUSED\)/);
    });

    it("an untrusted certificate is a CONNECTION_FAILED that names the ca option", async () => {
      const provider = make({ ca: undefined, retry: { attempts: 0 } });
      const error = await failureOf(provider.getAccessToken("graph"));
      expect(error.code).toBe("CONNECTION_FAILED");
      expect(error.retryable).toBe(false);
      expect(error.hint).toMatch(/ca option/);
    });

    it("goes through the proxy option (HTTP CONNECT), trusting the extra CA behind it", async () => {
      const tunnels: string[] = [];
      const proxy = createHttpServer();
      proxy.on("connect", (req, client, head) => {
        tunnels.push(req.url ?? "");
        const [host, port] = (req.url ?? "").split(":");
        const upstream = connect(Number(port), host, () => {
          client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          upstream.write(head);
          upstream.pipe(client);
          client.pipe(upstream);
        });
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      const address = proxy.address();
      const proxyPort = typeof address === "object" && address ? address.port : 0;
      try {
        const provider = make({ proxy: `http://127.0.0.1:${proxyPort}` });
        remember(await provider.getAccessToken("graph"));
        remember(await provider.getAccessToken("outlook"));
        await provider.dispose();
        expect(tunnels.length).toBeGreaterThan(0);
        expect(new Set(tunnels)).toEqual(new Set([new URL(emu.authorityHost).host]));
      } finally {
        proxy.closeAllConnections();
        await new Promise((resolve) => proxy.close(resolve));
      }
    });

    it("100 concurrent cold callers for two resources make exactly 2 token requests", async () => {
      const provider = make();
      const calls = Array.from({ length: 100 }, (_, i) =>
        provider.getAccessToken(i % 2 === 0 ? "graph" : "outlook"),
      );
      const tokens = await Promise.all(calls);
      expect(tokenRequests()).toBe(2);
      expect(passwordGrants()).toBe(1);
      expect(refreshGrants()).toBe(1);
      expect(new Set(tokens.filter((t) => t.resource === "graph").map((t) => t.token)).size).toBe(1);
      expect(new Set(tokens.filter((t) => t.resource === "outlook").map((t) => t.token)).size).toBe(1);
      for (const t of tokens) remember(t);
    });

    it("a passwordProvider is asked only when a password grant is needed", async () => {
      let asked = 0;
      const provider = make({
        password: undefined,
        passwordProvider: async () => {
          asked++;
          return DEMO_PASSWORD;
        },
      });
      remember(await provider.getAccessToken("graph"));
      remember(await provider.getAccessToken("outlook"));
      remember(await provider.getAccessToken("outlook", { forceRefresh: true }));
      expect(asked).toBe(1);
    });

    it("an aborted caller stops waiting with ABORTED", async () => {
      const provider = make();
      const controller = new AbortController();
      controller.abort();
      const error = await failureOf(provider.getAccessToken("graph", { signal: controller.signal }));
      expect(error.code).toBe("ABORTED");
    });

    describe("file cache", () => {
      let dir: string;
      beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), "auth-ropc-file-"));
      });
      afterAll(async () => {
        await rm(dir, { recursive: true, force: true });
      });

      it("survives a new provider instance: no password grant on restart; the file holds no secret in clear", async () => {
        const path = join(dir, `${engine}.json`);
        const key = Buffer.alloc(32, 7);
        const first = make({ cache: fileTokenCache({ path, key }) });
        const graph = remember(await first.getAccessToken("graph"));
        const outlook = remember(await first.getAccessToken("outlook"));
        await first.dispose();
        expect((await stat(path)).mode & 0o777).toBe(0o600);
        const text = await readFile(path, "utf8");
        for (const secret of [DEMO_PASSWORD, graph.token, outlook.token]) expect(text).not.toContain(secret);
        // A JWT's shape, dots included: the base64 ciphertext has no dots, yet holds "eyJ" by chance in ~4% of runs.
        expect(text).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);

        emu.admin.resetCounts();
        const second = make({ cache: fileTokenCache({ path, key }) });
        const graph2 = remember(await second.getAccessToken("graph"));
        remember(await second.getAccessToken("outlook"));
        expect(passwordGrants()).toBe(0);
        // Regression (audit, bug 4): with ".default" the msal engine used to miss msal's cache (it
        // looks access tokens up by the requested scopes) and made a refresh grant on every restart.
        expect(graph2.token).toBe(graph.token);
        expect(tokenRequests()).toBe(0);
        emu.admin.resetCounts();
        remember(await second.getAccessToken("graph", { forceRefresh: true }));
        expect(passwordGrants()).toBe(0);
        expect(refreshGrants()).toBe(1);
      });

      it("with explicit scopes the persisted access tokens are served on restart without any request", async () => {
        const path = join(dir, `${engine}-explicit.json`);
        const key = Buffer.alloc(32, 8);
        const scopes = { graph: ["User.Read", "Mail.Send"], outlook: ["SMTP.Send"] };
        const first = make({ cache: fileTokenCache({ path, key }), scopes });
        const graph = remember(await first.getAccessToken("graph"));
        const outlook = remember(await first.getAccessToken("outlook"));
        await first.dispose();
        emu.admin.resetCounts();
        const second = make({ cache: fileTokenCache({ path, key }), scopes });
        expect((await second.getAccessToken("graph")).token).toBe(graph.token);
        expect((await second.getAccessToken("outlook")).token).toBe(outlook.token);
        expect(tokenRequests()).toBe(0);
      });

      it("a tampered cache file is rejected loudly", async () => {
        const path = join(dir, `${engine}-tampered.json`);
        const key = Buffer.alloc(32, 9);
        const first = make({ cache: fileTokenCache({ path, key }) });
        remember(await first.getAccessToken("graph"));
        const envelope = JSON.parse(await readFile(path, "utf8"));
        envelope.tag = Buffer.alloc(16).toString("base64");
        const { writeFile } = await import("node:fs/promises");
        await writeFile(path, JSON.stringify(envelope));
        const second = make({ cache: fileTokenCache({ path, key }) });
        const error = await failureOf(second.getAccessToken("graph"));
        expect(error.code).toBe("CONFIG_INVALID");
        expect(error.message).toMatch(/cannot be decrypted/);
      });
    });

    it("never writes the password or a token into a log line or an error", () => {
      expect(errors.length).toBeGreaterThan(10);
      expect(logLines.length).toBeGreaterThan(0);
      expect(secrets.size).toBeGreaterThan(10);
      const haystack = [
        ...logLines,
        ...errors.flatMap((e) => [e.message, JSON.stringify(e.toJSON()), String(e.hint)]),
      ].join("\n");
      for (const secret of secrets) {
        expect(haystack.includes(secret), `a secret of ${secret.length} chars leaked`).toBe(false);
      }
    });
  },
);
