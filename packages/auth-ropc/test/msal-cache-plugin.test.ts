import type { TokenCacheContext } from "@azure/msal-node";
import { describe, expect, it } from "vitest";
import { memoryTokenCache } from "../src/cache/memory-token-cache.js";
import { msalCachePlugin } from "../src/msal-engine.js";

/** What msal hands the plugin: its in-memory cache, to be filled from the stored blob. */
function context() {
  const loaded: string[] = [];
  const ctx = {
    cacheHasChanged: false,
    tokenCache: {
      deserialize: (value: string) => {
        // msal's own deserialize: JSON.parse of the blob (a sealed value failed here, audit 1).
        JSON.parse(value);
        loaded.push(value);
      },
      serialize: () => "{}",
    },
  } as unknown as TokenCacheContext;
  return { ctx, loaded };
}

function warnings() {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => lines.push(`${level} ${message}`);
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

describe("msalCachePlugin: an entry msal cannot read is a miss, never a failed sign-in", () => {
  it.each([
    ["a value sealed by another owner", "pk1.p8qMgA==.AAAA.BBBB"],
    ["a damaged value", '{"Account": {'],
    ["JSON that is no cache", "[1,2,3]"],
  ])("%s: read as absent, with one warning", async (_, value) => {
    const cache = memoryTokenCache();
    await cache.set("k:msal", { value });
    const logger = warnings();
    const { ctx, loaded } = context();
    await expect(msalCachePlugin(cache, "k:msal", logger).beforeCacheAccess(ctx)).resolves.toBeUndefined();
    expect(loaded).toEqual([]);
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]).toMatch(/^warn token cache entry k:msal .*read as absent/);
    expect(logger.lines[0]).not.toContain(value);
  });

  it("loads msal's own cache", async () => {
    const cache = memoryTokenCache();
    await cache.set("k:msal", { value: '{"Account":{}}' });
    const logger = warnings();
    const { ctx, loaded } = context();
    await msalCachePlugin(cache, "k:msal", logger).beforeCacheAccess(ctx);
    expect(loaded).toEqual(['{"Account":{}}']);
    expect(logger.lines).toEqual([]);
  });
});
