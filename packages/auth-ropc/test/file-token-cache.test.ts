import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { M365MailError } from "@m365-mail/core";
import { DEMO_PASSWORD, startTestEmulator, type TestEmulator } from "@m365-mail/emulator";
import { buildIfStale } from "@m365-mail/test-helpers";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { fileTokenCache } from "../src/cache/file-token-cache.js";
import { memoryTokenCache } from "../src/cache/memory-token-cache.js";

const tsx = createRequire(import.meta.url).resolve("tsx");
// The other processes run this package from its sources (tsx) and @m365-mail/core as built: rebuild it
// first when its sources are newer, so they never run older code than this process.
buildIfStale({ root: join(__dirname, "../../core"), output: "dist/index.js" });

/** Another process with a fileTokenCache on the same file (test/fixtures/file-cache-process.ts). */
function otherProcess(args: Record<string, unknown>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", tsx, join(__dirname, "fixtures/file-cache-process.ts"), JSON.stringify(args)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

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

  it("loses no entry when four processes change the file at the same time", async () => {
    // Without the lock file, each process's read-modify-write overwrote the others' new entries.
    const path = join(dir, "shared.json");
    const key = randomBytes(32).toString("base64");
    await Promise.all(
      ["a", "b", "c", "d"].map((prefix) => otherProcess({ mode: "write", path, key, prefix, count: 30 })),
    );
    const cache = fileTokenCache({ path, key: Buffer.from(key, "base64") });
    const missing: string[] = [];
    for (const prefix of ["a", "b", "c", "d"]) {
      for (let i = 0; i < 30; i++) {
        if ((await cache.get(`${prefix}${i}`))?.value !== `value-${i}`) missing.push(`${prefix}${i}`);
      }
    }
    expect(missing).toEqual([]);
    expect(await exists(`${path}.lock`)).toBe(false);
  });

  it("takes over a lock file left by a process that died; waits for a live one, then TIMEOUT naming it", async () => {
    const path = join(dir, "locked.json");
    const lock = `${path}.lock`;
    const cache = fileTokenCache({ path, key: randomBytes(32), lockWaitMs: 300 });
    await writeFile(lock, "otherhost 1 dead");
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(lock, longAgo, longAgo);
    await cache.set("k", { value: "after-a-crash" });
    expect((await cache.get("k"))?.value).toBe("after-a-crash");
    expect(await exists(lock)).toBe(false);

    await writeFile(lock, "otherhost 2 alive");
    const error = await cache.set("k", { value: "blocked" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(M365MailError);
    expect(error).toMatchObject({ code: "TIMEOUT" });
    expect((error as M365MailError).message).toContain(lock);
    expect((error as M365MailError).hint).toContain(`delete ${lock}`);
    // Nothing was lost or half-written, and the other holder's lock was left alone.
    expect((await cache.get("k"))?.value).toBe("after-a-crash");
    expect(await readFile(lock, "utf8")).toBe("otherhost 2 alive");
    await rm(lock);
    await cache.set("k", { value: "released" });
    expect((await cache.get("k"))?.value).toBe("released");
  });

  it("says which lock file it cannot create, as a configuration error", async () => {
    // A regular file where the cache's folder should be (root may write anywhere, so no chmod here).
    await writeFile(join(dir, "not-a-folder"), "");
    const path = join(dir, "not-a-folder", "cache.json");
    const cache = fileTokenCache({ path, key: randomBytes(32) });
    const error = await cache.set("k", { value: "v" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(M365MailError);
    expect(error).toMatchObject({ code: "CONFIG_INVALID" });
    expect((error as M365MailError).message).toContain(`${path}.lock`);
    expect((error as M365MailError).hint).toMatch(/may write/);
  });

  it("withLock lets one holder in at a time, and frees the lock after a failure", async () => {
    const path = join(dir, "withlock.json");
    const key = randomBytes(32);
    const caches = [0, 1, 2].map(() => fileTokenCache({ path, key }));
    let inside = 0;
    let most = 0;
    await Promise.all(
      caches.map((cache) =>
        cache.withLock("grant", async () => {
          inside++;
          most = Math.max(most, inside);
          // The task may use the cache itself (the provider reads and writes tokens inside the lock).
          await cache.set("during", { value: "x" });
          await new Promise((r) => setTimeout(r, 20));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    await expect(
      caches[0]!.withLock("grant", async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    await expect(caches[1]!.withLock("grant", async () => "ok")).resolves.toBe("ok");
  });

  describe("shared by token providers in several processes (emulator)", () => {
    let emu: TestEmulator;
    beforeAll(async () => {
      emu = await startTestEmulator({ prefix: "auth-ropc-file-emu-", parts: [] });
    });
    afterAll(() => emu?.stop());

    for (const engine of ["http", "msal"] as const) {
      it(`${engine}: three processes started together sign in with the password once`, async () => {
        emu.admin.resetCounts();
        const path = join(dir, `fleet-${engine}.json`);
        const key = randomBytes(32).toString("base64");
        const provider = {
          tenantId: emu.tenantId,
          clientId: emu.clientId,
          username: "support@contoso.com",
          password: DEMO_PASSWORD,
          cloud: emu.cloud,
          ca: emu.caPem,
          engine,
        };
        const outputs = await Promise.all(
          [0, 1, 2].map(() => otherProcess({ mode: "sign-in", path, key, provider })),
        );
        const tokens = outputs.map((o) => JSON.parse(o) as { graph: string; outlook: string });
        expect(tokens.every((t) => t.graph.length > 20 && t.outlook.length > 20)).toBe(true);
        const counts = emu.admin.counts();
        expect(counts["entra.token.password"] ?? 0).toBe(1);
        if (engine === "http") {
          // The access tokens themselves are shared: the other resource is fetched once, with the
          // refresh token, and every process got the same Graph token.
          expect(counts["entra.token.refresh_token"] ?? 0).toBe(1);
          expect(new Set(tokens.map((t) => t.graph)).size).toBe(1);
        }
      }, 60_000);
    }
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
