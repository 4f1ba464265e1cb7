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
