import { request } from "node:https";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { httpsRequest, passwordGrant, postJson, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});
afterEach(() => {
  emulator.admin.clearFaults();
});

describe("faults on the token endpoint", () => {
  it("status429: answers 429 with Retry-After and a JSON body, once", async () => {
    emulator.admin.armFault({ target: "entra", kind: "status429", retryAfterSeconds: 7 });
    const throttled = await passwordGrant(emulator);
    expect(throttled.status).toBe(429);
    expect(throttled.headers["retry-after"]).toBe("7");
    expect(throttled.json).toMatchObject({ error: "temporarily_unavailable", error_codes: [90055] });
    expect((await passwordGrant(emulator)).status).toBe(200);
  });

  it("status500: answers 500 with Entra's JSON error shape", async () => {
    emulator.admin.armFault({ target: "entra", kind: "status500" });
    const answer = await passwordGrant(emulator);
    expect(answer.status).toBe(500);
    expect(answer.json).toMatchObject({ error: "server_error", error_codes: [50000] });
  });

  it.each([
    ["status503", 503],
    ["status504", 504],
  ] as const)("%s: answers an HTML page, not JSON", async (kind, status) => {
    emulator.admin.armFault({ target: "entra", kind });
    const answer = await passwordGrant(emulator);
    expect(answer.status).toBe(status);
    expect(answer.headers["content-type"]).toMatch(/^text\/html/);
    expect(answer.json).toBeUndefined();
  });

  it("malformedJson: answers 200 with a truncated body", async () => {
    emulator.admin.armFault({ target: "entra", kind: "malformedJson" });
    const answer = await passwordGrant(emulator);
    expect(answer.status).toBe(200);
    expect(answer.text.startsWith('{"token_type":"Bearer"')).toBe(true);
    expect(() => JSON.parse(answer.text)).toThrow();
  });

  it("reset: drops the connection without an answer", async () => {
    emulator.admin.armFault({ target: "entra", kind: "reset" });
    await expect(passwordGrant(emulator)).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it("emptyToken: answers 200 JSON without access_token", async () => {
    emulator.admin.armFault({ target: "entra", kind: "emptyToken" });
    const answer = await passwordGrant(emulator);
    expect(answer.status).toBe(200);
    expect(answer.json.token_type).toBe("Bearer");
    expect(answer.json).not.toHaveProperty("access_token");
  });

  it("delay: holds the answer back long enough for a client timeout to fire", async () => {
    emulator.admin.armFault({ target: "entra", kind: "delay", delayMs: 3000 });
    const timedOut = await new Promise<string>((resolve) => {
      const req = request(
        `${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`,
        {
          method: "POST",
          ca: emulator.caPem,
          headers: { "content-type": "application/x-www-form-urlencoded" },
        },
        () => resolve("answered"),
      );
      req.setTimeout(300, () => {
        req.destroy();
        resolve("timed out");
      });
      req.on("error", () => undefined);
      req.end("grant_type=password");
    });
    expect(timedOut).toBe("timed out");
    expect(emulator.admin.counts()["entra.fault.delay"]).toBe(1);
  });

  it("fires `times` times, then the endpoint works again", async () => {
    emulator.admin.armFault({ target: "entra", kind: "status500", times: 2 });
    expect((await passwordGrant(emulator)).status).toBe(500);
    expect((await passwordGrant(emulator)).status).toBe(500);
    expect((await passwordGrant(emulator)).status).toBe(200);
  });

  it("matches the path when one is given, and target '*'", async () => {
    emulator.admin.armFault({ target: "entra", kind: "status500", path: "/discovery/v2.0/keys" });
    expect((await passwordGrant(emulator)).status).toBe(200);
    const keys = await httpsRequest(
      emulator,
      `${emulator.authorityHost}/${emulator.tenantId}/discovery/v2.0/keys`,
    );
    expect(keys.status).toBe(500);
    emulator.admin.armFault({ target: "*", kind: "status500" });
    expect((await passwordGrant(emulator)).status).toBe(500);
  });
});

describe("admin API over HTTPS", () => {
  it("arms, lists and clears faults", async () => {
    const armed = await postJson(emulator, "/_admin/faults", {
      target: "entra",
      kind: "status429",
      times: 3,
    });
    expect(armed.status).toBe(201);
    expect(armed.json.armed).toEqual([expect.objectContaining({ kind: "status429", remaining: 3 })]);
    expect(
      (await httpsRequest(emulator, `${emulator.authorityHost}/_admin/faults`, { method: "DELETE" })).status,
    ).toBe(204);
    expect((await passwordGrant(emulator)).status).toBe(200);
  });

  it("rejects an invalid fault with a message naming the field", async () => {
    const answer = await postJson(emulator, "/_admin/faults", { target: "entra", kind: "explode" });
    expect(answer.status).toBe(400);
    expect(answer.json.error.message).toMatch(/kind must be one of/);
  });

  it("reads and resets counters", async () => {
    await postJson(emulator, "/_admin/counts/reset", {});
    await passwordGrant(emulator);
    const counts = await httpsRequest(emulator, `${emulator.authorityHost}/_admin/counts`);
    expect(counts.json).toEqual({
      "entra.token": 1,
      "entra.token.password": 1,
      "entra.token.password:support@contoso.com": 1,
    });
  });

  it("changes a user and an app for the next request", async () => {
    const patched = await postJson(emulator, "/_admin/users/alice@contoso.com", { locked: true }, "PATCH");
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ upn: "alice@contoso.com", locked: true, password: "[REDACTED]" });
    expect((await passwordGrant(emulator, { username: "alice@contoso.com" })).json.error_codes).toEqual([
      50053,
    ]);
    await postJson(emulator, "/_admin/users/alice@contoso.com", { locked: false }, "PATCH");
    expect((await passwordGrant(emulator, { username: "alice@contoso.com" })).status).toBe(200);

    await postJson(emulator, `/_admin/apps/${emulator.clientId}`, { assignmentRequired: false }, "PATCH");
    expect((await passwordGrant(emulator, { username: "unassigned@contoso.com" })).status).toBe(200);
    await postJson(emulator, `/_admin/apps/${emulator.clientId}`, { assignmentRequired: true }, "PATCH");
    expect((await passwordGrant(emulator, { username: "unassigned@contoso.com" })).json.error_codes).toEqual([
      50105,
    ]);
  });

  it("changes tenant switches: Security Defaults refuse ROPC and SMTP AUTH", async () => {
    const outlook = (await passwordGrant(emulator, { scope: "https://outlook.office.com/SMTP.Send" })).json
      .access_token;
    const patched = await postJson(
      emulator,
      "/_admin/tenants/contoso.com",
      { securityDefaults: true },
      "PATCH",
    );
    expect(patched.json).toEqual({ id: emulator.tenantId, securityDefaults: true, smtpAuthEnabled: true });
    try {
      expect((await passwordGrant(emulator)).json.error_codes).toEqual([50076]);
      expect(emulator.context.authorizeProtocol(outlook, "smtp")).toMatchObject({
        ok: false,
        reason: "protocol_disabled",
      });
    } finally {
      emulator.admin.updateTenant(emulator.tenantId, { securityDefaults: false });
    }
    expect((await passwordGrant(emulator)).status).toBe(200);
  });

  it("answers 404 for an unknown user", async () => {
    const answer = await postJson(emulator, "/_admin/users/ghost@contoso.com", { mfa: true }, "PATCH");
    expect(answer.status).toBe(404);
    expect(answer.json.error.code).toBe("NOT_FOUND");
  });

  it("revokes tokens and sets the token lifetime", async () => {
    const first = await passwordGrant(emulator, { username: "nosmtp@contoso.com" });
    const revoked = await postJson(emulator, "/_admin/tokens/revoke", { upn: "nosmtp@contoso.com" });
    expect(revoked.json.revokedRefreshTokens).toBe(1);
    expect(emulator.context.verifyAccessToken(first.json.access_token)).toMatchObject({
      ok: false,
      reason: "revoked",
    });
    expect((await postJson(emulator, "/_admin/token-lifetime", { seconds: 600 })).json).toEqual({
      seconds: 600,
    });
    expect((await passwordGrant(emulator)).json.expires_in).toBe(600);
    await postJson(emulator, "/_admin/token-lifetime", { seconds: 3600 });
  });

  it("shows the directory without passwords", async () => {
    const answer = await httpsRequest(emulator, `${emulator.authorityHost}/_admin/directory`);
    expect(answer.status).toBe(200);
    const users = answer.json.tenants[0].users as { upn: string; password: string }[];
    expect(users.map((u) => u.upn)).toContain("support@contoso.com");
    expect(new Set(users.map((u) => u.password))).toEqual(new Set(["[REDACTED]"]));
  });
});
