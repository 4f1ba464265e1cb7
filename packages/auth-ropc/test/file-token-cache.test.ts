import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { M365MailError } from "@m365-mail/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { fileTokenCache } from "../src/cache/file-token-cache.js";
import { memoryTokenCache } from "../src/cache/memory-token-cache.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "auth-ropc-cache-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const secret = "refresh-token-0123456789-SECRET";

describe("fileTokenCache", () => {
  const savedEnv = process.env.M365_CACHE_KEY;
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.M365_CACHE_KEY;
    else process.env.M365_CACHE_KEY = savedEnv;
  });

  it("round-trips entries across instances, file mode 0600, no plaintext in the file", async () => {
    const path = join(dir, "sub", "a.json");
    const key = randomBytes(32);
    const cache = fileTokenCache({ path, key });
    await cache.set("k:rt", { value: secret });
    await cache.set("k:at:graph", {
      value: "access-token-abcdef",
      expiresAt: Date.now() + 60_000,
      scopes: ["s"],
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, "utf8");
    expect(text).not.toContain(secret);
    expect(text).not.toContain("access-token-abcdef");
    expect(text).not.toContain("k:rt");

    const again = fileTokenCache({ path, key });
    expect((await again.get("k:rt"))?.value).toBe(secret);
    expect((await again.get("k:at:graph"))?.scopes).toEqual(["s"]);
    await again.delete("k:rt");
    expect(await cache.get("k:rt")).toBeUndefined();
  });

  it("uses a fresh IV on every write", async () => {
    const path = join(dir, "iv.json");
    const cache = fileTokenCache({ path, key: randomBytes(32) });
    await cache.set("a", { value: "same-value-123" });
    const first = JSON.parse(await readFile(path, "utf8")).iv;
    await cache.set("a", { value: "same-value-123" });
    expect(JSON.parse(await readFile(path, "utf8")).iv).not.toBe(first);
  });

  it("re-applies mode 0600 to a file that was opened up", async () => {
    const path = join(dir, "chmod.json");
    const cache = fileTokenCache({ path, key: randomBytes(32) });
    await cache.set("a", { value: "value-123456" });
    const { chmod } = await import("node:fs/promises");
    await chmod(path, 0o644);
    await cache.set("b", { value: "value-654321" });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("rejects a tampered file loudly (CONFIG_INVALID), on get and on set", async () => {
    const path = join(dir, "tampered.json");
    const key = randomBytes(32);
    const cache = fileTokenCache({ path, key });
    await cache.set("k", { value: secret });
    const envelope = JSON.parse(await readFile(path, "utf8"));
    const data = Buffer.from(envelope.data, "base64");
    data[0] = data[0]! ^ 1;
    envelope.data = data.toString("base64");
    await writeFile(path, JSON.stringify(envelope));
    const error = await cache.get("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(M365MailError);
    expect((error as M365MailError).code).toBe("CONFIG_INVALID");
    expect((error as M365MailError).message).toMatch(/modified, or written with another key/);
    expect((error as M365MailError).hint).toContain(path);
    await expect(cache.set("k2", { value: "x-123456" })).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });

  it("rejects a changed header (authenticated data) and a file that is not a cache", async () => {
    const path = join(dir, "header.json");
    const cache = fileTokenCache({ path, passphrase: "correct horse battery" });
    await cache.set("k", { value: secret });
    const envelope = JSON.parse(await readFile(path, "utf8"));
    envelope.N = 16384;
    await writeFile(path, JSON.stringify(envelope));
    await expect(
      fileTokenCache({ path, passphrase: "correct horse battery" }).get("k"),
    ).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    await writeFile(path, "not json at all");
    await expect(cache.get("k")).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });

  it("rejects a file written with another key or passphrase", async () => {
    const path = join(dir, "wrongkey.json");
    await fileTokenCache({ path, key: randomBytes(32) }).set("k", { value: secret });
    await expect(fileTokenCache({ path, key: randomBytes(32) }).get("k")).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    await expect(fileTokenCache({ path, passphrase: "some passphrase" }).get("k")).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    const ppath = join(dir, "wrongpass.json");
    await fileTokenCache({ path: ppath, passphrase: "first passphrase" }).set("k", { value: secret });
    await expect(
      fileTokenCache({ path: ppath, passphrase: "second passphrase" }).get("k"),
    ).rejects.toMatchObject({
      code: "CONFIG_INVALID",
    });
    expect((await fileTokenCache({ path: ppath, passphrase: "first passphrase" }).get("k"))?.value).toBe(
      secret,
    );
  });

  it("takes its key from M365_CACHE_KEY, and refuses to start without any key", async () => {
    delete process.env.M365_CACHE_KEY;
    expect(() => fileTokenCache({ path: join(dir, "nokey.json") })).toThrow(/M365_CACHE_KEY/);
    process.env.M365_CACHE_KEY = Buffer.alloc(16, 1).toString("base64");
    expect(() => fileTokenCache({ path: join(dir, "shortkey.json") })).toThrow(/32 bytes/);
    process.env.M365_CACHE_KEY = randomBytes(32).toString("base64");
    const path = join(dir, "envkey.json");
    await fileTokenCache({ path }).set("k", { value: secret });
    expect((await fileTokenCache({ path }).get("k"))?.value).toBe(secret);
  });

  it("does not return expired entries", async () => {
    const cache = fileTokenCache({ path: join(dir, "expired.json"), key: randomBytes(32) });
    await cache.set("old", { value: "old-value-123", expiresAt: Date.now() - 1 });
    expect(await cache.get("old")).toBeUndefined();
  });
});

describe("memoryTokenCache", () => {
  it("stores, expires and deletes", async () => {
    const cache = memoryTokenCache();
    await cache.set("a", { value: "1" });
    await cache.set("b", { value: "2", expiresAt: Date.now() - 1 });
    expect((await cache.get("a"))?.value).toBe("1");
    expect(await cache.get("b")).toBeUndefined();
    await cache.delete("a");
    expect(await cache.get("a")).toBeUndefined();
  });
});
