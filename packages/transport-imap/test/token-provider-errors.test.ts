import { type AccessToken, M365MailError, type TokenProvider } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { imapTransport } from "../src/index.js";

const provider = (getAccessToken: () => Promise<AccessToken>): TokenProvider => ({
  kind: "token-provider",
  name: "test-provider",
  username: "support@contoso.com",
  getAccessToken,
});

async function firstError(auth: TokenProvider): Promise<M365MailError> {
  // Port 1 on loopback: nothing listens, but the token is asked for before any connection.
  const imap = imapTransport({ auth, host: "127.0.0.1", port: 1 });
  try {
    const iterator = imap.listMessages()[Symbol.asyncIterator]();
    const error = await iterator.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof M365MailError)) throw new Error(`expected an M365MailError, got ${String(error)}`);
    return error;
  } finally {
    await imap.close();
  }
}

describe("token provider failures", () => {
  it("pass a provider's own M365MailError through unchanged", async () => {
    const mfa = new M365MailError("MFA_REQUIRED", "AADSTS50076", { source: "auth-ropc" });
    expect(await firstError(provider(() => Promise.reject(mfa)))).toBe(mfa);
  });

  it("wrap anything else as AUTH_FAILED with the cause kept", async () => {
    const boom = new Error("keychain locked");
    const error = await firstError(provider(() => Promise.reject(boom)));
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.cause).toBe(boom);
    expect(error.message).toContain("test-provider");
  });

  it("refuse an empty access token before connecting", async () => {
    const empty = {
      token: "",
      expiresAt: new Date(Date.now() + 3600_000),
      resource: "outlook" as const,
      scopes: [],
    };
    const error = await firstError(provider(() => Promise.resolve(empty)));
    expect(error.code).toBe("AUTH_FAILED");
    expect(error.message).toContain("empty access token");
  });

  it("report a closed port as CONNECTION_FAILED once the token is there", async () => {
    const token = {
      token: "x".repeat(40),
      expiresAt: new Date(Date.now() + 3600_000),
      resource: "outlook" as const,
      scopes: [],
    };
    expect((await firstError(provider(() => Promise.resolve(token)))).code).toBe("CONNECTION_FAILED");
  });
});

describe("options", () => {
  const auth = provider(() => Promise.reject(new Error("unused")));
  it("refuse a missing token provider and bad numbers with CONFIG_INVALID", () => {
    expect(() => imapTransport({} as never)).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }));
    expect(() => imapTransport({ auth, fetchBatchSize: 0 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
    expect(() => imapTransport({ auth, timeoutMs: -1 })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
  });
  it("is named imap and can read, watch, list folders, search, manage and download but not send", () => {
    const imap = imapTransport({ auth });
    expect(imap.name).toBe("imap");
    expect(imap.capabilities).toEqual({
      send: false,
      read: true,
      watch: true,
      folders: true,
      calendar: false,
      search: true,
      manage: true,
      attachments: true,
    });
  });
});
