import { M365MailError, registerSecret } from "@m365-mail/core";

/**
 * The 32-byte AES-256-GCM key of a persistent cache: the `key` option, else `M365_CACHE_KEY` (base64).
 * `cacheName` and `extraHint` only shape the error ("fileTokenCache", ", the same in every process").
 */
export function resolveCacheKey(option: Uint8Array | undefined, cacheName: string, extraHint = ""): Buffer {
  let key: Buffer;
  let origin: string;
  if (option !== undefined) {
    key = Buffer.from(option);
    origin = "the key option";
  } else {
    const env = process.env.M365_CACHE_KEY;
    if (!env) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `${cacheName} needs a key: none given and M365_CACHE_KEY is not set`,
        {
          source: "auth-ropc",
          hint: `Set M365_CACHE_KEY to 32 random bytes in base64 (openssl rand -base64 32)${extraHint}.`,
        },
      );
    }
    registerSecret(env);
    key = Buffer.from(env, "base64");
    origin = "M365_CACHE_KEY";
  }
  if (key.length !== 32) {
    throw new M365MailError("CONFIG_INVALID", `${origin} must be 32 bytes, got ${key.length}`, {
      source: "auth-ropc",
      hint: "Generate one with: openssl rand -base64 32.",
    });
  }
  return key;
}
