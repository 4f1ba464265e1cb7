import type { AccessToken, Resource, TokenProvider } from "@m365-mail/core";
import { describe, expect, it } from "vitest";
import { spyProvider } from "../src/index.js";

const inner: TokenProvider = {
  kind: "token-provider",
  name: "fake",
  username: "support@contoso.com",
  async getAccessToken(resource: Resource): Promise<AccessToken> {
    return { token: `${resource}-token`, resource, scopes: [], expiresAt: new Date(Date.now() + 3_600_000) };
  },
};

describe("spyProvider", () => {
  it("records each request and passes it through", async () => {
    const spy = spyProvider(inner);
    expect((await spy.getAccessToken("outlook")).token).toBe("outlook-token");
    await spy.getAccessToken("graph", { forceRefresh: true });
    expect(spy.calls).toEqual([
      { resource: "outlook", forceRefresh: false },
      { resource: "graph", forceRefresh: true },
    ]);
    expect(spy.username).toBe("support@contoso.com");
  });

  it("hands out another resource's token when told to (the short-scope mistake)", async () => {
    const spy = spyProvider(inner, { resource: "graph" });
    expect((await spy.getAccessToken("outlook")).token).toBe("graph-token");
    expect(spy.calls).toEqual([{ resource: "outlook", forceRefresh: false }]);
  });
});
