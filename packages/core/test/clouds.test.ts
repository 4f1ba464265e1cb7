import { describe, expect, it } from "vitest";
import { CLOUDS, readJwtClaims, resolveCloud, scopesFor, summarizeToken } from "../src/index.js";

describe("clouds and scopes", () => {
  it("always builds full-URI Outlook scopes (the short form yields a Graph token)", () => {
    expect(scopesFor(CLOUDS.global, "outlook", ["IMAP.AccessAsUser.All"])).toEqual([
      "https://outlook.office.com/IMAP.AccessAsUser.All",
    ]);
    expect(scopesFor(CLOUDS.usgovhigh, "outlook", ["SMTP.Send"])).toEqual([
      "https://outlook.office365.us/SMTP.Send",
    ]);
    expect(scopesFor(CLOUDS.china, "graph", ["Mail.Read"])).toEqual([
      "https://microsoftgraph.chinacloudapi.cn/Mail.Read",
    ]);
  });

  it("keeps the hosts of each cloud apart", () => {
    expect(CLOUDS.usdod.graphEndpoint).toBe("https://dod-graph.microsoft.us");
    expect(CLOUDS.global.smtp).toEqual({ host: "smtp.office365.com", port: 587 });
    expect(CLOUDS.china.supportsScopeParameter).toBe(false);
  });

  it("rejects an unknown cloud name with the list of valid ones", () => {
    expect(() => resolveCloud("mars" as never)).toThrowError(/global, usgovhigh, usdod, china/);
  });
});

describe("readJwtClaims", () => {
  const claims = {
    aud: "https://outlook.office.com",
    scp: "IMAP.AccessAsUser.All SMTP.Send",
    upn: "a@b.c",
    exp: 2000000000,
  };
  const token = `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

  it("reads the claims without verifying and summarises them", () => {
    expect(readJwtClaims(token)).toMatchObject(claims);
    expect(summarizeToken(token)).toMatchObject({
      audience: "https://outlook.office.com",
      scopes: ["IMAP.AccessAsUser.All", "SMTP.Send"],
      user: "a@b.c",
      expiresAt: new Date(2000000000 * 1000),
    });
  });

  it("returns undefined for opaque tokens", () => {
    expect(readJwtClaims("EwBwA8l6BAAU-opaque")).toBeUndefined();
    expect(readJwtClaims("a.!!!.c")).toBeUndefined();
  });
});
