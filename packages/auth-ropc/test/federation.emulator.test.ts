import { createServer, type IncomingMessage } from "node:http";
import { request } from "node:https";
import { type AddressInfo, connect as netConnect, type Socket } from "node:net";
import { connect } from "node:tls";
import { encodeXOAuth2, type Logger, M365MailError, readJwtClaims } from "@m365-mail/core";
import {
  DEMO_PASSWORD,
  dovecotPart,
  findDovecot,
  graphPart,
  startTestEmulator,
  type TestEmulator,
} from "@m365-mail/emulator";
import { needs } from "@m365-mail/test-helpers";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type RopcEngine,
  type RopcTokenProviderOptions,
  ropcTokenProvider,
} from "../src/ropc-token-provider.js";

// Federated (AD FS) users of the demo directory: adatum.com is federated to the emulator's AD FS.
const OPS = "ops@adatum.com"; // SAML 1.1
const SAML2 = "saml2@adatum.com"; // SAML 2.0
const MANAGED = "support@contoso.com";

let emu: TestEmulator;
beforeAll(async () => {
  emu = await startTestEmulator({ prefix: "auth-ropc-fed-", parts: [] });
});
afterAll(() => emu?.stop());

const logLines: string[] = [];
const errors: M365MailError[] = [];
const secrets = new Set<string>([DEMO_PASSWORD]);
const capture: Logger = {
  debug: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  info: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  warn: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
  error: (m, d) => logLines.push(`${m} ${JSON.stringify(d ?? {})}`),
};

const n = (name: string) => emu.admin.counts()[name] ?? 0;
const adfsRequests = () => n("adfs.requests");

async function failureOf(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "expected a rejection").toBeInstanceOf(M365MailError);
  errors.push(error as M365MailError);
  return error as M365MailError;
}

describe.each<RopcEngine>(["http", "msal"])("federated users (engine %s)", (engine) => {
  const providers: Array<{ dispose(): Promise<void> }> = [];
  const make = (overrides: Partial<RopcTokenProviderOptions> = {}) => {
    const provider = ropcTokenProvider({
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      username: OPS,
      password: DEMO_PASSWORD,
      cloud: emu.cloud,
      ca: emu.caPem,
      engine,
      logger: capture,
      retry: { attempts: 1, baseDelayMs: 5 },
      timeoutMs: 5000,
      ...overrides,
    } as RopcTokenProviderOptions);
    providers.push(provider);
    return provider;
  };
  const keep = <T extends { token: string }>(t: T): T => {
    secrets.add(t.token);
    return t;
  };

  beforeEach(() => {
    emu.admin.resetCounts();
    emu.admin.clearFaults();
    emu.admin.updateAdfsSettings({
      wsTrust13: true,
      wsTrust2005: true,
      mex: true,
      reachable: true,
      assertionLifetimeSeconds: 3600,
    });
    emu.admin.updateApp(emu.clientId, { allowCloudPasswordValidation: false });
  });
  afterEach(async () => {
    await Promise.all(providers.splice(0).map((p) => p.dispose()));
  });

  it.each([
    { user: OPS, version: "1.3", saml: "1.1" },
    { user: SAML2, version: "1.3", saml: "2.0" },
    { user: OPS, version: "2005", saml: "1.1" },
    { user: SAML2, version: "2005", saml: "2.0" },
  ] as const)(
    "$user signs in through WS-Trust $version with a SAML $saml assertion, then refreshes for Outlook",
    async ({ user, version, saml }) => {
      if (version === "2005") emu.admin.updateAdfsSettings({ wsTrust13: false });
      const provider = make({ username: user });
      const graph = keep(await provider.getAccessToken("graph"));
      expect(readJwtClaims(graph.token)?.upn).toBe(user);
      expect(readJwtClaims(graph.token)?.aud).toBe("https://graph.microsoft.com");

      const route = provider.signInRoute();
      expect(route).toMatchObject({
        mode: "auto",
        realm: "Federated",
        method: "saml-bearer",
        wsTrustVersion: version,
        adfsEndpoint: `${emu.adfsOrigin}/adfs/services/trust/${version === "1.3" ? "13" : "2005"}/usernamemixed`,
        grantType: `urn:ietf:params:oauth:grant-type:${saml === "1.1" ? "saml1_1-bearer" : "saml2-bearer"}`,
      });
      // The password went to AD FS only: Entra ID saw an assertion, never a password grant.
      expect(n(`adfs.wstrust.${version === "1.3" ? "13" : "2005"}:${user}`)).toBe(1);
      expect(n(`entra.token.saml${saml === "1.1" ? "11" : "20"}`)).toBe(1);
      expect(n("entra.token.password")).toBe(0);

      const before = n("entra.token.refresh_token");
      const outlook = keep(await provider.getAccessToken("outlook"));
      expect(readJwtClaims(outlook.token)?.aud).toBe("https://outlook.office.com");
      expect(readJwtClaims(outlook.token)?.upn).toBe(user);
      expect(n("entra.token.refresh_token")).toBe(before + 1);
      expect(n(`adfs.wstrust.${version === "1.3" ? "13" : "2005"}`)).toBe(1);
      expect(n("entra.token.password")).toBe(0);
    },
  );

  it("reuses the realm and MEX answers when it signs in again after its refresh token was revoked", async () => {
    const provider = make();
    keep(await provider.getAccessToken("graph"));
    emu.admin.revokeTokens(OPS);
    keep(await provider.getAccessToken("graph", { forceRefresh: true }));
    expect(n("adfs.wstrust.13")).toBe(2);
    expect(n("entra.userrealm")).toBe(1);
    expect(n("adfs.mex")).toBe(1);
  });

  it("a managed user makes no AD FS request: one realm lookup, then the plain password grant", async () => {
    const provider = make({ username: MANAGED });
    keep(await provider.getAccessToken("graph"));
    expect(provider.signInRoute()).toMatchObject({ realm: "Managed", method: "password" });
    expect(n("entra.userrealm")).toBe(1);
    expect(n("entra.token.password")).toBe(1);
    expect(adfsRequests()).toBe(0);
  });

  it('federation: "direct" sends the password to Entra ID, which refuses a federated user without an HRD policy', async () => {
    const error = await failureOf(make({ federation: "direct" }).getAccessToken("graph"));
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.serverCode).toBe("AADSTS50126");
    expect(n("entra.userrealm")).toBe(0);
    expect(adfsRequests()).toBe(0);
    // With cloud password validation allowed for the app, the same grant works.
    emu.admin.updateApp(emu.clientId, { allowCloudPasswordValidation: true });
    keep(await make({ federation: "direct" }).getAccessToken("graph"));
    expect(n("entra.token.password")).toBe(2);
  });

  it('federation: "ws-trust" refuses a managed domain with CONFIG_INVALID', async () => {
    const error = await failureOf(
      make({ username: MANAGED, federation: "ws-trust" }).getAccessToken("graph"),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.hint).toContain('"auto"');
    expect(adfsRequests()).toBe(0);
  });

  it.each([
    { user: OPS, password: "Wrong-Passw0rd!", code: "AUTH_FAILED", fault: "wrong-password" },
    { user: "adlocked@adatum.com", password: DEMO_PASSWORD, code: "ACCOUNT_LOCKED", fault: "locked" },
    {
      user: "adexpired@adatum.com",
      password: DEMO_PASSWORD,
      code: "PASSWORD_EXPIRED",
      fault: "password-expired",
    },
  ])(
    "an AD FS refusal ($fault) is $code with a hint naming AD FS, and nothing is tried at Entra ID",
    async ({ user, password, code, fault }) => {
      secrets.add(password);
      const error = await failureOf(make({ username: user, password }).getAccessToken("graph"));
      expect(error.code).toBe(code);
      expect(error.hint).toMatch(/AD FS/);
      expect(error.hint).toContain(emu.adfsOrigin);
      expect(error.serverCode).toBe("a:FailedAuthentication");
      expect(n(`adfs.wstrust.fault.${fault}`)).toBe(1);
      // No fallback: the refusal is final, and a second try at Entra ID would count towards a lockout.
      expect(n("entra.token")).toBe(0);
    },
  );

  // Regression (audit, bug 1): Entra ID refusing AD FS's assertion was reported as a wrong password.
  it("an assertion Entra ID refuses as expired (AADSTS50013) is CONFIG_INVALID naming the clocks, not the password", async () => {
    // An assertion that has expired by the time Entra ID reads it: what a skewed AD FS clock produces.
    emu.admin.updateAdfsSettings({ assertionLifetimeSeconds: 0.001 });
    const error = await failureOf(make().getAccessToken("graph"));
    expect(error.serverCode).toBe("AADSTS50013");
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.hint).toMatch(/clock/i);
    expect(error.hint).toMatch(/AD FS/);
    expect(error.hint).not.toMatch(/check the username and password/i);
    expect(n("adfs.issued.saml11")).toBe(1);
    expect(n("entra.token.password")).toBe(0);
  });

  it("a password with XML's special characters reaches AD FS intact (escaped in the RST)", async () => {
    const tricky = `p<&>"'${Date.now()}`;
    secrets.add(tricky);
    emu.admin.updateUser(OPS, { password: tricky });
    try {
      keep(await make({ password: tricky }).getAccessToken("graph"));
      expect(n("adfs.issued.saml11")).toBe(1);
    } finally {
      emu.admin.updateUser(OPS, { password: DEMO_PASSWORD });
    }
  });

  it("AD FS metadata without a username/password endpoint is NOT_SUPPORTED, with the AD FS setting to change", async () => {
    emu.admin.updateAdfsSettings({ wsTrust13: false, wsTrust2005: false });
    const error = await failureOf(make().getAccessToken("graph"));
    expect(error.code).toBe("NOT_SUPPORTED");
    expect(error.hint).toContain("usernamemixed");
    expect(error.hint).toContain("AD FS");
    expect(n("entra.token")).toBe(0);
  });

  it("auto falls back to the password grant when AD FS is unreachable and the tenant validates cloud passwords", async () => {
    emu.admin.updateAdfsSettings({ reachable: false });
    emu.admin.updateApp(emu.clientId, { allowCloudPasswordValidation: true });
    const lines = logLines.length;
    const provider = make();
    keep(await provider.getAccessToken("graph"));
    expect(provider.signInRoute()).toMatchObject({ realm: "Federated", method: "password" });
    expect(provider.signInRoute()?.fallbackReason).toMatch(/AD FS unreachable/);
    expect(n("entra.token.password")).toBe(1);
    expect(logLines.slice(lines).join("\n")).toMatch(
      /AD FS unreachable.*trying the password grant at Entra ID/,
    );
  });

  it("auto fails with a hint naming both fixes when AD FS is unreachable and the tenant refuses the password", async () => {
    emu.admin.updateAdfsSettings({ reachable: false });
    const error = await failureOf(make().getAccessToken("graph"));
    expect(error.code).toBe("CONNECTION_FAILED");
    expect(error.message).toMatch(/AD FS could not be reached/);
    expect(error.message).toMatch(/AADSTS50126/);
    expect(error.hint).toMatch(/Make AD FS reachable/);
    expect(error.hint).toMatch(/AllowCloudPasswordValidation/);
    expect(n("entra.token.password")).toBe(1);
  });

  it('federation: "ws-trust" does not fall back: an unreachable AD FS is CONNECTION_FAILED naming AD FS', async () => {
    emu.admin.updateAdfsSettings({ reachable: false });
    const error = await failureOf(make({ federation: "ws-trust" }).getAccessToken("graph"));
    expect(error.code).toBe("CONNECTION_FAILED");
    expect(error.hint).toContain("federation server");
    expect(n("entra.token")).toBe(0);
  });

  it("no password, token or assertion reached a log line or an error message", () => {
    const text = [...logLines, ...errors.map((e) => JSON.stringify(e.toJSON()))].join("\n");
    expect(logLines.some((l) => l.includes("WS-Trust"))).toBe(true);
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/<(\w+:)?Assertion/);
    expect(text).not.toMatch(/<(\w+:)?Password>[^<[]/);
  });
});

/** An HTTP CONNECT proxy that records the host:port of every tunnel it opens. */
async function connectProxy(): Promise<{ url: string; targets: string[]; close(): Promise<void> }> {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => res.writeHead(405).end());
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    targets.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    const upstream = netConnect(Number(port), host!, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => s.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    targets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// Regression (audit, bug 3): the proxy option (documented as "for requests to Entra ID") also carried
// the AD FS requests, which usually must go straight to an intranet AD FS.
describe.each<RopcEngine>(["http", "msal"])("proxy and adfsProxy (engine %s)", (engine) => {
  let proxy: Awaited<ReturnType<typeof connectProxy>>;
  beforeAll(async () => {
    proxy = await connectProxy();
  });
  afterAll(() => proxy?.close());
  beforeEach(() => {
    proxy.targets.length = 0;
    emu.admin.updateAdfsSettings({ reachable: true, mex: true, wsTrust13: true, wsTrust2005: true });
  });
  const hostOf = (origin: string) => new URL(origin).host;
  const sign = async (overrides: Partial<RopcTokenProviderOptions>) => {
    const provider = ropcTokenProvider({
      tenantId: emu.tenantId,
      clientId: emu.clientId,
      username: OPS,
      password: DEMO_PASSWORD,
      cloud: emu.cloud,
      ca: emu.caPem,
      engine,
      retry: { attempts: 1, baseDelayMs: 5 },
      timeoutMs: 5000,
      ...overrides,
    } as RopcTokenProviderOptions);
    try {
      secrets.add((await provider.getAccessToken("graph")).token);
      return provider.signInRoute();
    } finally {
      await provider.dispose();
    }
  };

  it("proxy carries Entra ID's requests only: AD FS (MEX, WS-Trust) is reached directly", async () => {
    const route = await sign({ proxy: proxy.url });
    expect(route?.method).toBe("saml-bearer");
    expect(proxy.targets).toContain(hostOf(emu.cloud.authorityHost));
    expect(proxy.targets).not.toContain(hostOf(emu.adfsOrigin));
  });

  it("adfsProxy carries AD FS's requests only", async () => {
    const route = await sign({ adfsProxy: proxy.url });
    expect(route?.method).toBe("saml-bearer");
    expect(proxy.targets).toContain(hostOf(emu.adfsOrigin));
    expect(proxy.targets).not.toContain(hostOf(emu.cloud.authorityHost));
  });

  it("the same URL in both sends everything through the proxy", async () => {
    await sign({ proxy: proxy.url, adfsProxy: proxy.url });
    expect(new Set(proxy.targets)).toEqual(
      new Set([hostOf(emu.cloud.authorityHost), hostOf(emu.adfsOrigin)]),
    );
  });

  it("an invalid adfsProxy is CONFIG_INVALID naming adfsProxy", () => {
    expect(() =>
      ropcTokenProvider({
        tenantId: emu.tenantId,
        clientId: emu.clientId,
        username: OPS,
        password: DEMO_PASSWORD,
        adfsProxy: "not a url",
      }),
    ).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", message: expect.stringContaining("adfsProxy") }),
    );
  });
});

/** GET over HTTPS trusting the emulator's CA. */
function httpsJson(url: string, token: string, ca: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = "";
      res.on("data", (c) => {
        text += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A minimal IMAP client over TLS: AUTHENTICATE XOAUTH2, EXAMINE INBOX, FETCH the last subject. */
function imapSubject(port: number, user: string, token: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca, servername: "localhost" });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("IMAP timed out"));
    }, 10_000);
    let buffer = "";
    let step = 0;
    socket.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      if (step === 0 && buffer.includes("* OK")) {
        step = 1;
        socket.write(`a1 AUTHENTICATE XOAUTH2 ${encodeXOAuth2(user, token)}\r\n`);
      } else if (step === 1 && /\r\na1 |^a1 /.test(buffer)) {
        if (!/a1 OK/.test(buffer)) return reject(new Error(`AUTHENTICATE failed: ${buffer.slice(-200)}`));
        step = 2;
        socket.write("a2 EXAMINE INBOX\r\n");
      } else if (step === 2 && /a2 (OK|NO|BAD)/.test(buffer)) {
        step = 3;
        socket.write("a3 FETCH * (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n");
      } else if (step === 3 && /a3 (OK|NO|BAD)/.test(buffer)) {
        clearTimeout(timer);
        socket.end("a4 LOGOUT\r\n");
        const subject = /Subject: ([^\r\n]*)/i.exec(buffer)?.[1];
        if (subject) resolve(subject);
        else reject(new Error(`no subject in ${buffer.slice(-300)}`));
      }
    });
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe.skipIf(!needs("dovecot", () => findDovecot() !== undefined))(
  "a federated user's tokens open the mailbox",
  { timeout: 30_000 },
  () => {
    let mailEmu: TestEmulator;
    beforeAll(async () => {
      mailEmu = await startTestEmulator({
        prefix: "auth-ropc-fed-mail-",
        parts: [graphPart(), dovecotPart()],
      });
    }, 30_000);
    afterAll(() => mailEmu?.stop());

    it.each<RopcEngine>(["http", "msal"])(
      "reads mail over Graph and IMAP with tokens from WS-Trust (engine %s)",
      async (engine) => {
        const subject = `Fabrikam ticket ${engine} ${Date.now()}`;
        await mailEmu.store.deliver(
          OPS,
          "inbox",
          Buffer.from(`From: customer@example.com\r\nTo: ${OPS}\r\nSubject: ${subject}\r\n\r\nHello\r\n`),
        );
        const provider = ropcTokenProvider({
          tenantId: mailEmu.tenantId,
          clientId: mailEmu.clientId,
          username: OPS,
          password: DEMO_PASSWORD,
          cloud: mailEmu.cloud,
          ca: mailEmu.caPem,
          engine,
        });
        try {
          const graph = await provider.getAccessToken("graph");
          const outlook = await provider.getAccessToken("outlook");
          expect(provider.signInRoute()?.method).toBe("saml-bearer");
          const origin = mailEmu.cloud.graphOrigin ?? mailEmu.cloud.graphEndpoint;
          const listed = await httpsJson(
            `${origin}/v1.0/me/mailFolders/inbox/messages?$select=subject&$top=50`,
            graph.token,
            mailEmu.caPem,
          );
          expect(listed.status).toBe(200);
          expect(listed.body.value.map((m: { subject: string }) => m.subject)).toContain(subject);
          expect(await imapSubject(mailEmu.cloud.imap.port, OPS, outlook.token, mailEmu.caPem)).toBe(subject);
          const counts = mailEmu.admin.counts();
          expect(counts["entra.token.password"] ?? 0).toBe(0);
          expect(counts["entra.token.saml11"]).toBeGreaterThan(0);
        } finally {
          await provider.dispose();
        }
      },
    );
  },
);
