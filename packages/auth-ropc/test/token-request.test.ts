import { CLOUDS } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { buildTokenRequest } from "../src/http-engine.js";
import { resolveScopes } from "../src/scopes.js";

describe("token request shape", () => {
  it("v2 password grant: scope with offline_access, on /oauth2/v2.0/token", () => {
    const req = buildTokenRequest({
      authority: "https://login.microsoftonline.com/contoso.com",
      clientId: "cid",
      protocol: "v2",
      grant: { type: "password", username: "support@contoso.com", password: "p@ss word&x" },
      scopes: ["https://graph.microsoft.com/.default"],
      resourceUri: "https://graph.microsoft.com",
    });
    expect(req.url).toBe("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token");
    const form = new URLSearchParams(req.body);
    expect(Object.fromEntries(form)).toEqual({
      client_id: "cid",
      grant_type: "password",
      username: "support@contoso.com",
      password: "p@ss word&x",
      scope: "https://graph.microsoft.com/.default offline_access",
    });
  });

  it("v2 refresh grant carries the refresh token and the other resource's scopes", () => {
    const req = buildTokenRequest({
      authority: "https://login.microsoftonline.com/t",
      clientId: "cid",
      protocol: "v2",
      grant: { type: "refresh_token", refreshToken: "rt-1" },
      scopes: ["https://outlook.office.com/IMAP.AccessAsUser.All"],
      resourceUri: "https://outlook.office.com",
    });
    const form = Object.fromEntries(new URLSearchParams(req.body));
    expect(form).toEqual({
      client_id: "cid",
      grant_type: "refresh_token",
      refresh_token: "rt-1",
      scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    });
  });

  it("v1 (21Vianet): resource= on /oauth2/token, no scope", () => {
    const cloud = CLOUDS.china;
    expect(cloud.supportsScopeParameter).toBe(false);
    const req = buildTokenRequest({
      authority: `${cloud.authorityHost}/contoso.partner.onmschina.cn`,
      clientId: "cid",
      protocol: "v1",
      grant: { type: "password", username: "u@contoso.cn", password: "pw" },
      scopes: resolveScopes(cloud, undefined).outlook,
      resourceUri: cloud.outlookResource,
    });
    expect(req.url).toBe("https://login.chinacloudapi.cn/contoso.partner.onmschina.cn/oauth2/token");
    const form = Object.fromEntries(new URLSearchParams(req.body));
    expect(form).toEqual({
      client_id: "cid",
      grant_type: "password",
      username: "u@contoso.cn",
      password: "pw",
      resource: "https://partner.outlook.cn",
    });
  });
});

describe("resolveScopes", () => {
  it("defaults to .default per resource", () => {
    expect(resolveScopes(CLOUDS.global, undefined)).toEqual({
      graph: ["https://graph.microsoft.com/.default"],
      outlook: ["https://outlook.office.com/.default"],
    });
  });
  it("prefixes short Outlook names so they never yield a Graph token", () => {
    const s = resolveScopes(CLOUDS.usgovhigh, {
      graph: ["Mail.Read"],
      outlook: ["IMAP.AccessAsUser.All", "https://x/y"],
    });
    expect(s.graph).toEqual(["https://graph.microsoft.us/Mail.Read"]);
    expect(s.outlook).toEqual(["https://outlook.office365.us/IMAP.AccessAsUser.All", "https://x/y"]);
  });
});
