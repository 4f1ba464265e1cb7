import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { decodeJwt, httpsRequest, passwordGrant, postForm, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

const OUTLOOK = "https://outlook.office.com/.default";

async function tokenFor(username: string, scope = OUTLOOK): Promise<string> {
  const answer = await passwordGrant(emulator, { username, scope });
  expect(answer.status).toBe(200);
  return answer.json.access_token;
}

function introspect(protocol: string, token: string) {
  return postForm(emulator, `${emulator.authorityHost}/introspect/${protocol}`, { token });
}

describe("RFC 7662 introspection for Dovecot and the SMTP part", () => {
  it("answers active with the UPN as username for a valid Outlook token", async () => {
    const token = await tokenFor("support@contoso.com");
    const answer = await introspect("imap", token);
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(answer.json).toMatchObject({
      active: true,
      username: "support@contoso.com",
      upn: "support@contoso.com",
      aud: "https://outlook.office.com",
      client_id: emulator.clientId,
    });
    expect(answer.json.scope.split(" ")).toContain("IMAP.AccessAsUser.All");
    expect(answer.json.exp).toBe(decodeJwt(token).claims.exp);
    for (const protocol of ["pop3", "smtp"])
      expect((await introspect(protocol, token)).json.active).toBe(true);
  });

  it("also answers Dovecot's GET mode", async () => {
    const token = await tokenFor("support@contoso.com");
    const answer = await httpsRequest(
      emulator,
      `${emulator.authorityHost}/introspect/imap?token=${encodeURIComponent(token)}`,
    );
    expect(answer.json.active).toBe(true);
  });

  it("refuses a Graph token (a short-name scope) for IMAP: wrong audience", async () => {
    const token = await tokenFor("support@contoso.com", "IMAP.AccessAsUser.All");
    const answer = await introspect("imap", token);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ active: false, error: "wrong_audience" });
  });

  it("refuses a token without the protocol's scope", async () => {
    const granted = emulator.admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
    emulator.admin.updateApp(emulator.clientId, {
      grantedPermissions: { ...granted, outlook: ["IMAP.AccessAsUser.All"] },
    });
    try {
      const token = await tokenFor("support@contoso.com");
      expect((await introspect("imap", token)).json.active).toBe(true);
      expect((await introspect("pop3", token)).json).toMatchObject({ active: false, error: "missing_scope" });
      expect((await introspect("smtp", token)).json).toMatchObject({ active: false, error: "missing_scope" });
    } finally {
      emulator.admin.updateApp(emulator.clientId, { grantedPermissions: granted });
    }
  });

  it.each([
    ["noimap@contoso.com", "imap", "pop3"],
    ["nopop@contoso.com", "pop3", "imap"],
    ["nosmtp@contoso.com", "smtp", "imap"],
  ])("follows the mailbox switches: %s is refused on %s, allowed on %s", async (user, off, on) => {
    const token = await tokenFor(user);
    expect((await introspect(off, token)).json).toMatchObject({ active: false, error: "protocol_disabled" });
    expect((await introspect(on, token)).json.active).toBe(true);
  });

  it("follows the tenant's SMTP AUTH switch", async () => {
    const token = await tokenFor("alice@contoso.com");
    const tenant = emulator.context.directory().tenants[0]!;
    tenant.smtpAuthEnabled = false;
    try {
      expect((await introspect("smtp", token)).json).toMatchObject({
        active: false,
        error: "protocol_disabled",
      });
    } finally {
      tenant.smtpAuthEnabled = true;
    }
  });

  it("refuses revoked, tampered and malformed tokens", async () => {
    const token = await tokenFor("alice@contoso.com");
    const [h, c, s] = token.split(".");
    const claims = JSON.parse(Buffer.from(c!, "base64url").toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, upn: "support@contoso.com" })).toString("base64url")}.${s}`;
    expect((await introspect("imap", forged)).json).toMatchObject({ active: false, error: "bad_signature" });
    expect((await introspect("imap", "not-a-token")).json).toMatchObject({
      active: false,
      error: "malformed",
    });
    emulator.admin.revokeTokens("alice@contoso.com");
    expect((await introspect("imap", token)).json).toMatchObject({ active: false, error: "revoked" });
  });

  it("refuses an expired token", async () => {
    emulator.admin.setTokenLifetime(1);
    let token: string;
    try {
      token = await tokenFor("support@contoso.com");
    } finally {
      emulator.admin.setTokenLifetime(3600);
    }
    const { exp } = decodeJwt(token).claims;
    await sleep(Math.max(0, exp * 1000 - Date.now()) + 50);
    expect((await introspect("imap", token)).json).toMatchObject({ active: false, error: "expired" });
  });

  it("records the last denials per protocol for the admin API", async () => {
    const token = await tokenFor("noimap@contoso.com");
    await introspect("imap", token);
    const answer = await httpsRequest(emulator, `${emulator.authorityHost}/_admin/last-denials`);
    expect(answer.status).toBe(200);
    expect(answer.json.imap.at(-1)).toMatchObject({
      protocol: "imap",
      upn: "noimap@contoso.com",
      reason: "protocol_disabled",
    });
  });
});

describe("context.authorizeProtocol (in-process check for the SMTP and Graph parts)", () => {
  it("lets a delegate open a shared mailbox and nobody else", async () => {
    const support = await tokenFor("support@contoso.com");
    const alice = await tokenFor("alice@contoso.com");
    const allowed = emulator.context.authorizeProtocol(support, "smtp", "shared@contoso.com");
    expect(allowed).toMatchObject({
      ok: true,
      mailbox: { upn: "shared@contoso.com" },
      user: { upn: "support@contoso.com" },
    });
    expect(emulator.context.authorizeProtocol(alice, "smtp", "shared@contoso.com")).toMatchObject({
      ok: false,
      reason: "not_delegate",
    });
  });

  it("checks the Graph audience for the graph protocol", async () => {
    const graph = await tokenFor("support@contoso.com", "https://graph.microsoft.com/User.Read");
    const outlook = await tokenFor("support@contoso.com");
    expect(emulator.context.authorizeProtocol(graph, "graph").ok).toBe(true);
    expect(emulator.context.authorizeProtocol(outlook, "graph")).toMatchObject({
      ok: false,
      reason: "wrong_audience",
    });
  });

  it("tells listeners when a user's tokens are revoked", async () => {
    const revoked: string[] = [];
    const off = emulator.context.onTokensRevoked((upn) => revoked.push(upn));
    emulator.admin.revokeTokens("nosmtp@contoso.com");
    off();
    emulator.admin.revokeTokens("nosmtp@contoso.com");
    expect(revoked).toEqual(["nosmtp@contoso.com"]);
  });
});
