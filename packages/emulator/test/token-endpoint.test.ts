import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { decodeJwt, passwordGrant, refreshGrant, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

describe("password grant", () => {
  it("answers Microsoft's success shape with full-URI scopes echoed", async () => {
    const answer = await passwordGrant(emulator, {
      scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access openid profile",
      extra: { client_info: "1" },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(answer.headers["cache-control"]).toContain("no-store");
    expect(Object.keys(answer.json)).toEqual([
      "token_type",
      "scope",
      "expires_in",
      "ext_expires_in",
      "access_token",
      "refresh_token",
      "id_token",
      "client_info",
    ]);
    expect(answer.json.token_type).toBe("Bearer");
    expect(answer.json.scope.split(" ")).toContain("https://outlook.office.com/IMAP.AccessAsUser.All");
    // Sign-in scopes are not echoed for a non-Graph resource.
    expect(answer.json.scope).not.toMatch(/openid|offline_access/);
    expect(answer.json.expires_in).toBe(3600);
  });

  it("issues an RS256 access token shaped like Microsoft's", async () => {
    const answer = await passwordGrant(emulator, { scope: "https://outlook.office.com/SMTP.Send" });
    const { header, claims } = decodeJwt(answer.json.access_token);
    expect(header).toMatchObject({ typ: "JWT", alg: "RS256" });
    expect(header.kid).toBe(header.x5t);
    expect(claims).toMatchObject({
      aud: "https://outlook.office.com",
      iss: `https://sts.windows.net/${emulator.tenantId}/`,
      upn: "support@contoso.com",
      unique_name: "support@contoso.com",
      tid: emulator.tenantId,
      appid: emulator.clientId,
      name: "Contoso Support",
      ver: "1.0",
    });
    expect(claims.scp.split(" ")).toContain("SMTP.Send");
    expect(claims.exp - claims.iat).toBe(3600);
    expect(claims.nbf).toBe(claims.iat);
    expect(claims.oid).toMatch(/^[0-9a-f-]{36}$/);
    // No refresh token without offline_access, no id_token without openid.
    expect(answer.json.refresh_token).toBeUndefined();
    expect(answer.json.id_token).toBeUndefined();
  });

  it("refreshes for another resource with a rotated refresh token", async () => {
    const first = await passwordGrant(emulator);
    const second = await refreshGrant(
      emulator,
      first.json.refresh_token,
      "https://graph.microsoft.com/Mail.Read offline_access",
    );
    expect(second.status).toBe(200);
    expect(decodeJwt(second.json.access_token).claims.aud).toBe("https://graph.microsoft.com");
    expect(second.json.refresh_token).toBeTruthy();
    expect(second.json.refresh_token).not.toBe(first.json.refresh_token);
  });
});

describe("scope parsing, as Entra does it", () => {
  it("turns a short scope name into a Graph token, even an Outlook permission's name", async () => {
    const graph = await passwordGrant(emulator, { scope: "User.Read openid profile" });
    expect(decodeJwt(graph.json.access_token).claims.aud).toBe("00000003-0000-0000-c000-000000000000");
    expect(graph.json.scope.split(" ")).toEqual(
      expect.arrayContaining(["User.Read", "Mail.Read", "openid", "profile"]),
    );

    // The most common mistake: IMAP.AccessAsUser.All without its prefix yields a Graph token.
    const mistake = await passwordGrant(emulator, { scope: "IMAP.AccessAsUser.All" });
    expect(mistake.status).toBe(200);
    const claims = decodeJwt(mistake.json.access_token).claims;
    expect(claims.aud).toBe("00000003-0000-0000-c000-000000000000");
    expect(claims.scp.split(" ")).toContain("IMAP.AccessAsUser.All");
  });

  it("puts every consented permission of the resource in the token, not only the requested one", async () => {
    const answer = await passwordGrant(emulator, { scope: "https://graph.microsoft.com/Mail.Read" });
    const scp = decodeJwt(answer.json.access_token).claims.scp.split(" ");
    expect(scp).toEqual(expect.arrayContaining(["Mail.Read", "Mail.Send", "Calendars.Read", "User.Read"]));
    expect(scp).not.toContain("SMTP.Send");
    expect(answer.json.scope.split(" ")).toContain("https://graph.microsoft.com/Mail.Send");
  });

  it("gives every granted permission for /.default", async () => {
    const answer = await passwordGrant(emulator, { scope: "https://outlook.office.com/.default" });
    expect(decodeJwt(answer.json.access_token).claims.scp.split(" ").sort()).toEqual([
      "IMAP.AccessAsUser.All",
      "POP.AccessAsUser.All",
      "SMTP.Send",
    ]);
    expect(answer.json.scope.split(" ")).toContain("https://outlook.office.com/POP.AccessAsUser.All");
  });

  it("answers a Graph token when only sign-in scopes are asked for", async () => {
    const answer = await passwordGrant(emulator, { scope: "openid offline_access" });
    expect(decodeJwt(answer.json.access_token).claims.aud).toBe("00000003-0000-0000-c000-000000000000");
    expect(answer.json.refresh_token).toBeTruthy();
    expect(answer.json.id_token).toBeTruthy();
  });

  it("keeps the audience as the client named the resource", async () => {
    const office365 = await passwordGrant(emulator, {
      scope: "https://outlook.office365.com/IMAP.AccessAsUser.All",
    });
    expect(decodeJwt(office365.json.access_token).claims.aud).toBe("https://outlook.office365.com");
    const byAppId = await passwordGrant(emulator, {
      scope: "00000003-0000-0000-c000-000000000000/User.Read",
    });
    expect(decodeJwt(byAppId.json.access_token).claims.aud).toBe("00000003-0000-0000-c000-000000000000");
  });

  it("refuses a short scope that no consent covers", async () => {
    const answer = await passwordGrant(emulator, { scope: "Files.ReadWrite.All" });
    expect(answer.json.error_codes).toEqual([65001]);
  });
});

describe("id_token and client_info (msal needs both)", () => {
  it("issues a v2 id_token for the app and client_info with uid and utid", async () => {
    const answer = await passwordGrant(emulator, {
      scope: "https://graph.microsoft.com/User.Read openid profile email offline_access",
      extra: { client_info: "1" },
    });
    const { header, claims } = decodeJwt(answer.json.id_token);
    const access = decodeJwt(answer.json.access_token).claims;
    expect(header.alg).toBe("RS256");
    expect(claims).toMatchObject({
      aud: emulator.clientId,
      iss: `${emulator.authorityHost}/${emulator.tenantId}/v2.0`,
      preferred_username: "support@contoso.com",
      email: "support@contoso.com",
      name: "Contoso Support",
      oid: access.oid,
      tid: emulator.tenantId,
      ver: "2.0",
    });
    expect(claims.sub).toBe(access.sub);
    expect(JSON.parse(Buffer.from(answer.json.client_info, "base64url").toString())).toEqual({
      uid: access.oid,
      utid: emulator.tenantId,
    });
  });

  it("omits client_info unless asked with client_info=1", async () => {
    expect((await passwordGrant(emulator)).json.client_info).toBeUndefined();
  });
});

describe("refresh tokens", () => {
  const graphScope = "https://graph.microsoft.com/User.Read offline_access";

  it("keeps working after rotation (Microsoft does not invalidate the previous one)", async () => {
    const first = await passwordGrant(emulator);
    const second = await refreshGrant(emulator, first.json.refresh_token, graphScope);
    const third = await refreshGrant(emulator, second.json.refresh_token, graphScope);
    expect(third.status).toBe(200);
    expect(
      new Set([first.json.refresh_token, second.json.refresh_token, third.json.refresh_token]).size,
    ).toBe(3);
    expect((await refreshGrant(emulator, first.json.refresh_token, graphScope)).status).toBe(200);
  });

  it("re-checks the account: a user put under MFA since sign-in is refused", async () => {
    const first = await passwordGrant(emulator, { username: "alice@contoso.com" });
    emulator.admin.updateUser("alice@contoso.com", { mfa: true });
    try {
      expect((await refreshGrant(emulator, first.json.refresh_token, graphScope)).json.error_codes).toEqual([
        50076,
      ]);
    } finally {
      emulator.admin.updateUser("alice@contoso.com", { mfa: false });
    }
    const granted = emulator.admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
    emulator.admin.updateApp(emulator.clientId, {
      grantedPermissions: { graph: ["User.Read"], outlook: ["SMTP.Send"] },
    });
    try {
      const refused = await refreshGrant(
        emulator,
        first.json.refresh_token,
        "https://outlook.office.com/IMAP.AccessAsUser.All",
      );
      expect(refused.json).toMatchObject({
        error: "invalid_grant",
        error_codes: [65001],
        suberror: "consent_required",
      });
    } finally {
      emulator.admin.updateApp(emulator.clientId, { grantedPermissions: granted });
    }
  });

  it("fails with AADSTS50173 after revocation, and revoked access tokens fail verification", async () => {
    const first = await passwordGrant(emulator, { username: "nopop@contoso.com" });
    expect(emulator.context.verifyAccessToken(first.json.access_token).ok).toBe(true);
    expect(emulator.admin.revokeTokens("nopop@contoso.com").revokedRefreshTokens).toBe(1);
    const refused = await refreshGrant(emulator, first.json.refresh_token, graphScope);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: "invalid_grant", error_codes: [50173] });
    expect(emulator.context.verifyAccessToken(first.json.access_token)).toMatchObject({
      ok: false,
      reason: "revoked",
    });
    // A new sign-in after the revocation works and its tokens are valid.
    const again = await passwordGrant(emulator, { username: "nopop@contoso.com" });
    expect(emulator.context.verifyAccessToken(again.json.access_token).ok).toBe(true);
  });

  it("fails with AADSTS700082 once idle-expired", async () => {
    const first = await passwordGrant(emulator, { username: "noimap@contoso.com" });
    emulator.admin.expireRefreshTokens("noimap@contoso.com");
    const refused = await refreshGrant(emulator, first.json.refresh_token, graphScope);
    expect(refused.json).toMatchObject({ error: "invalid_grant", error_codes: [700082] });
    expect(refused.json.error_description).toContain("The refresh token has expired due to inactivity.");
  });

  it("refuses another app's refresh token and garbage", async () => {
    const first = await passwordGrant(emulator);
    const otherApp = await refreshGrant(
      emulator,
      first.json.refresh_token,
      graphScope,
      "11111111-2222-4333-8444-555555555555",
    );
    expect(otherApp.json.error_codes).toEqual([70000]);
    expect((await refreshGrant(emulator, "0.Anot-a-token", graphScope)).json.error_codes).toEqual([9002313]);
  });

  it("counts refresh grants per user", async () => {
    const first = await passwordGrant(emulator);
    emulator.admin.resetCounts();
    await refreshGrant(emulator, first.json.refresh_token, graphScope);
    expect(emulator.admin.counts()).toMatchObject({
      "entra.token.refresh_token": 1,
      "entra.token.refresh_token:support@contoso.com": 1,
    });
  });
});

describe("token lifetime", () => {
  it("follows the admin setting", async () => {
    emulator.admin.setTokenLifetime(120);
    try {
      const answer = await passwordGrant(emulator);
      expect(answer.json.expires_in).toBe(120);
      const claims = decodeJwt(answer.json.access_token).claims;
      expect(claims.exp - claims.iat).toBe(120);
    } finally {
      emulator.admin.setTokenLifetime(3600);
    }
  });
});
