import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator } from "../src/index.js";
import { httpsRequest, passwordGrant } from "./helpers.js";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "m365-emulator-tls-"));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the emulator's CA", () => {
  it("is created once in <dataDir>/ca with a private key only the owner can read, and reused after a restart", async () => {
    const first = await startEmulator({ dataDir });
    const token = (await passwordGrant(first)).json.access_token as string;
    const caPem = first.caPem;
    await first.stop();

    expect(first.caPath).toBe(join(dataDir, "ca", "ca.pem"));
    expect((await stat(join(dataDir, "ca", "ca-key.pem"))).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(caPem);
    expect(ca.ca).toBe(true);
    const years = (Date.parse(ca.validTo) - Date.now()) / (365 * 86_400_000);
    expect(years).toBeGreaterThan(9.9);

    const second = await startEmulator({ dataDir });
    try {
      expect(second.caPem).toBe(caPem);
      // The signing key persists too: a token from before the restart still verifies.
      expect(second.context.verifyAccessToken(token).ok).toBe(true);
      expect((await passwordGrant(second)).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  it("ends up with one CA when two emulators start at once on a fresh data folder", async () => {
    const fresh = await mkdtemp(join(tmpdir(), "m365-emulator-race-"));
    try {
      const both = await Promise.all([startEmulator({ dataDir: fresh }), startEmulator({ dataDir: fresh })]);
      await Promise.all(both.map((e) => e.stop()));
      expect(both[0]!.caPem).toBe(both[1]!.caPem);
      expect(await readFile(join(fresh, "ca", "ca.pem"), "utf8")).toBe(both[0]!.caPem);
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it("signs a server certificate for 127.0.0.1, ::1 and localhost", async () => {
    const emulator = await startEmulator({ dataDir });
    try {
      const cert = new X509Certificate(emulator.context.tls.certPem);
      expect(cert.checkIssued(new X509Certificate(emulator.caPem))).toBe(true);
      expect(cert.subjectAltName).toContain("DNS:localhost");
      expect(cert.subjectAltName).toContain("IP Address:127.0.0.1");
      expect(cert.subjectAltName).toMatch(/IP Address:(0:0:0:0:0:0:0:1|::1)/);
      // A client trusting only the CA reaches it by the name localhost as well.
      const port = new URL(emulator.authorityHost).port;
      const answer = await httpsRequest(
        emulator,
        `https://localhost:${port}/${emulator.tenantId}/discovery/v2.0/keys`,
      );
      expect(answer.status).toBe(200);
    } finally {
      await emulator.stop();
    }
  });
});
