import { spawn } from "node:child_process";
import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildIfStale } from "@m365-mail/test-helpers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTlsMaterial } from "../src/tls-material.js";

const tsx = createRequire(import.meta.url).resolve("tsx");
// The other processes load this package from sources (tsx) and @m365-mail/core as built.
buildIfStale({ root: join(__dirname, "../../core"), output: "dist/index.js" });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function bridgeStart(dataDir: string): Promise<{ fingerprint: string; generated: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", tsx, join(__dirname, "fixtures/tls-material-process.ts"), dataDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`exit ${code}: ${err}`)),
    );
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bridge-tls-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the generated certificate", () => {
  it("is made once when three bridges start on one dataDir at the same time, and its key matches", async () => {
    const dataDir = join(dir, "together");
    const starts = await Promise.all([0, 1, 2].map(() => bridgeStart(dataDir)));
    // Before the lock each process made its own pair, and the files could end up as one's key and
    // another's certificate.
    expect(new Set(starts.map((s) => s.fingerprint)).size).toBe(1);
    expect(starts.filter((s) => s.generated)).toHaveLength(1);
    const cert = new X509Certificate(await readFile(join(dataDir, "tls", "bridge-cert.pem")));
    expect(cert.fingerprint256).toBe(starts[0]!.fingerprint);
    expect(
      cert.checkPrivateKey(createPrivateKey(await readFile(join(dataDir, "tls", "bridge-key.pem")))),
    ).toBe(true);
  }, 60_000);

  it("is kept across starts, and made anew when the key on disk does not match it", async () => {
    const dataDir = join(dir, "mismatch");
    const first = await loadTlsMaterial({ dataDir, logger: quiet });
    expect(first.generated).toBe(true);
    const again = await loadTlsMaterial({ dataDir, logger: quiet });
    expect(again).toMatchObject({ generated: false, cert: first.cert });

    // A key from elsewhere beside the certificate (a pair half-replaced): TLS could not start with it.
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    await writeFile(join(dataDir, "tls", "bridge-key.pem"), privateKey);
    const repaired = await loadTlsMaterial({ dataDir, logger: quiet });
    expect(repaired.generated).toBe(true);
    expect(repaired.cert).not.toBe(first.cert);
    expect(new X509Certificate(repaired.cert).checkPrivateKey(createPrivateKey(repaired.key))).toBe(true);
  }, 60_000);
});
