import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deviceCodeTokenProvider } from "@m365-mail/auth-device-code";
import { fileTokenCache } from "@m365-mail/auth-ropc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from "../src/events/webhooks.js";
import { ALICE, client, startTestEmulator, startTestServer, type TestEmulator, waitFor } from "./helpers.js";

const SECRET = "whsec-sign-in-health-0123456789";

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

let emu: TestEmulator;
const closers: Array<() => Promise<void>> = [];
beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await emu?.stop();
});

async function receiver() {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

const signInEvents = (received: Received[]) =>
  received.map((r) => JSON.parse(r.body)).filter((e) => String(e.type).startsWith("sign-in."));

/** With a key: the codes and hints (without one, /readyz says only ok or not per component). */
async function readyz(url: string, key: string) {
  const res = await fetch(`${url}/readyz`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: (await res.json()) as any };
}

describe("sign-in health in the server", () => {
  it("one webhook and a 503 /readyz when the user becomes MFA-required, one more webhook when it is cleared", async () => {
    // Two-second tokens: the server asks Entra ID again within seconds, as it would after an hour.
    emu.emulator.admin.setTokenLifetime(2);
    const hook = await receiver();
    const srv = await startTestServer(emu.emulator, {
      M365_USERNAME: ALICE,
      WEBHOOK_URLS: hook.url,
      WEBHOOK_SECRET: SECRET,
    });
    closers.push(() => srv.stop());
    const api = client(srv.url, srv.key);
    try {
      const first = await readyz(srv.url, srv.key);
      expect(first.status).toBe(200);
      expect(first.body.signIn.status).toBe("ok");

      emu.emulator.admin.updateUser(ALICE, { mfa: true });
      await new Promise((r) => setTimeout(r, 1500));
      // Every request fails while the problem lasts; the mail watch behind the webhooks retries too.
      for (let i = 0; i < 3; i++) expect((await api("/v1/messages?limit=1")).ok).toBe(false);
      const problem = await waitFor(
        async () => signInEvents(hook.received).find((e) => e.type === "sign-in.problem"),
        10_000,
        "the sign-in.problem webhook",
      );
      expect(problem.data).toMatchObject({ provider: "auth-ropc", username: ALICE, code: "MFA_REQUIRED" });
      expect(problem.data.hint).toContain("login --device-code");
      const down = await readyz(srv.url, srv.key);
      expect(down.status).toBe(503);
      expect(down.body.signIn).toMatchObject({
        status: "problem",
        code: "MFA_REQUIRED",
        serverCode: "AADSTS50076",
      });
      expect(down.body.checks[0]).toMatchObject({ name: "sign-in", ok: false, code: "MFA_REQUIRED" });
      await new Promise((r) => setTimeout(r, 2500));
      expect(signInEvents(hook.received).map((e) => e.type)).toEqual(["sign-in.problem"]);

      emu.emulator.admin.updateUser(ALICE, { mfa: false });
      await waitFor(
        async () => ((await api("/v1/messages?limit=1")).ok ? true : undefined),
        10_000,
        "mail again",
      );
      await waitFor(
        async () => (signInEvents(hook.received).length === 2 ? true : undefined),
        10_000,
        "the sign-in.recovered webhook",
      );
      await new Promise((r) => setTimeout(r, 2500));
      const events = signInEvents(hook.received);
      expect(events.map((e) => e.type)).toEqual(["sign-in.problem", "sign-in.recovered"]);
      expect(events[1].data).toMatchObject({ code: "MFA_REQUIRED", username: ALICE });
      const up = await readyz(srv.url, srv.key);
      expect(up.status).toBe(200);
      expect(up.body.signIn.status).toBe("ok");
      for (const r of hook.received.filter((x) => x.body.includes('"sign-in.'))) {
        const headers = {
          signature: r.headers[SIGNATURE_HEADER] as string,
          timestamp: r.headers[TIMESTAMP_HEADER] as string,
        };
        expect(verifyWebhook(SECRET, headers, r.body)).toBe(true);
      }
    } finally {
      emu.emulator.admin.updateUser(ALICE, { mfa: false });
      emu.emulator.admin.setTokenLifetime(3600);
    }
  }, 60_000);

  it("runs with M365_AUTH=device-code from the file a device-code sign-in was stored in", async () => {
    const dir = await mkdtemp(join(tmpdir(), "m365-server-dc-"));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const key = randomBytes(32);
    const path = join(dir, "tokens.json");
    emu.emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1 });
    // What `m365-mail login --device-code` does, for the MFA user ROPC cannot serve.
    const login = deviceCodeTokenProvider({
      tenantId: emu.emulator.tenantId,
      clientId: emu.emulator.clientId,
      username: "mfa@contoso.com",
      cloud: emu.emulator.cloud,
      ca: emu.emulator.caPem,
      cache: fileTokenCache({ path, key }),
      onDeviceCode: (info) =>
        void setTimeout(() => emu.emulator.admin.approveDeviceCode(info.userCode, "mfa@contoso.com"), 200),
    });
    await login.signIn();
    await login.dispose();

    const srv = await startTestServer(emu.emulator, {
      M365_USERNAME: "mfa@contoso.com",
      M365_PASSWORD: "",
      M365_AUTH: "device-code",
      M365_TOKEN_CACHE_FILE: path,
      M365_CACHE_KEY: key.toString("base64"),
    });
    closers.push(() => srv.stop());
    const ready = await readyz(srv.url, srv.key);
    expect(ready.body.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(ready.status).toBe(200);
    const me = await client(srv.url, srv.key)("/v1/folders");
    expect(me.status).toBe(200);
    expect(emu.emulator.admin.counts()["entra.token.password:mfa@contoso.com"]).toBeUndefined();
  });
});
