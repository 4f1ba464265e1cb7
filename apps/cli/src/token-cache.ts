import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { TokenCache } from "@m365-mail/auth-ropc";
import { registerSecret } from "@m365-mail/core";
import type { ResolvedConfig } from "./config.js";
import { usageError } from "./exit-codes.js";

export interface CliTokenCache {
  cache: TokenCache;
  /** Where the sign-in is (or would be) stored and what encrypts it; no secret. */
  description: string;
}

/** The key file beside the cache file: token-cache.json → token-cache.key. */
export function keyFileOf(cacheFile: string): string {
  return `${cacheFile.replace(/\.json$/, "")}.key`;
}

function readKey(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (error) {
    throw usageError(
      `cannot read the token cache key ${path}`,
      "Check its permissions (it should be mode 0600).",
      error,
    );
  }
  registerSecret(text);
  const key = Buffer.from(text, "base64");
  if (key.length !== 32) {
    throw usageError(
      `the token cache key ${path} is not 32 bytes of base64`,
      `Delete ${path} and the cache file, then run \`m365-mail login --device-code\` again.`,
    );
  }
  return key;
}

/**
 * The encrypted file a device-code sign-in lives in (auth-ropc's fileTokenCache). Its key is
 * M365_CACHE_KEY when set (every process that reads the file needs the same), else a random key in a
 * 0600 file beside it, created by `login` (`create`). Without key and file nothing was stored yet: an
 * empty memory cache, so the provider says to run `m365-mail login --device-code`.
 */
export async function openTokenCache(
  config: ResolvedConfig,
  options: { create?: boolean } = {},
): Promise<CliTokenCache> {
  const { fileTokenCache, memoryTokenCache } = await import("@m365-mail/auth-ropc");
  const path = config.tokenCacheFile;
  const env = config.env.M365_CACHE_KEY;
  if (env) {
    registerSecret(env);
    const key = Buffer.from(env, "base64");
    if (key.length !== 32) {
      throw usageError(
        "M365_CACHE_KEY must be 32 bytes of base64",
        "Generate one with: openssl rand -base64 32.",
      );
    }
    return { cache: fileTokenCache({ path, key }), description: `${path} (encrypted with M365_CACHE_KEY)` };
  }
  const keyFile = keyFileOf(path);
  if (!existsSync(keyFile)) {
    if (!options.create) return { cache: memoryTokenCache(), description: `${path} (nothing stored yet)` };
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    const key = randomBytes(32).toString("base64");
    registerSecret(key);
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600, flag: "wx" });
  }
  return {
    cache: fileTokenCache({ path, key: readKey(keyFile) }),
    description: `${path} (encrypted with the key in ${keyFile})`,
  };
}
