import { M365MailError } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { ropcTokenProvider } from "../src/ropc-token-provider.js";

const base = {
  tenantId: "contoso.com",
  clientId: "cid",
  username: "support@contoso.com",
  password: "Secret-123",
};

function configError(fn: () => unknown): M365MailError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(M365MailError);
    expect((error as M365MailError).code).toBe("CONFIG_INVALID");
    return error as M365MailError;
  }
  throw new Error("no error");
}

describe("ropcTokenProvider options", () => {
  it("refuses common/consumers as tenant (AADSTS9001023) before any request", () => {
    expect(configError(() => ropcTokenProvider({ ...base, tenantId: "common" })).hint).toMatch(/tenant\) ID/);
    configError(() => ropcTokenProvider({ ...base, tenantId: "consumers" }));
  });
  it("needs exactly one of password and passwordProvider", () => {
    const { password: _, ...noPassword } = base;
    configError(() => ropcTokenProvider(noPassword));
    configError(() => ropcTokenProvider({ ...base, passwordProvider: async () => "x" }));
  });
  it("needs an https authority and a known engine", () => {
    configError(() => ropcTokenProvider({ ...base, authorityHost: "http://127.0.0.1:1" }));
    configError(() => ropcTokenProvider({ ...base, engine: "adal" as never }));
    configError(() => ropcTokenProvider({ ...base, proxy: "not a url" }));
  });
  it("exposes name, username, cloud and engine; the password is not in its JSON", async () => {
    const p = ropcTokenProvider({ ...base, engine: "http", cloud: "usgovhigh" });
    expect(p.kind).toBe("token-provider");
    expect(p.name).toBe("auth-ropc");
    expect(p.username).toBe("support@contoso.com");
    expect(p.cloud.name).toBe("usgovhigh");
    expect(p.engine).toBe("http");
    expect(JSON.stringify({ ...p, msalApplication: undefined })).not.toContain("Secret-123");
    await p.dispose();
    await expect(p.getAccessToken("graph")).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });
  it("rejects an unknown resource", async () => {
    const p = ropcTokenProvider({ ...base, engine: "http" });
    await expect(p.getAccessToken("smtp" as never)).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    await p.dispose();
  });
});
