import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_PASSWORD, type Emulator } from "../src/index.js";
import { passwordGrant, postForm, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

const DESCRIPTION =
  /^AADSTS(\d+): [^\r\n]+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/;

function expectAadsts(
  answer: { status: number; json: any; headers: any },
  code: number,
  error: string,
  status = 400,
) {
  expect(answer.status).toBe(status);
  expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
  expect(answer.json).toMatchObject({
    error,
    error_codes: [code],
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  });
  expect(answer.json.error_description).toMatch(DESCRIPTION);
  expect(answer.json.error_description.startsWith(`AADSTS${code}: `)).toBe(true);
  expect(answer.json.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  expect(answer.json.trace_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(answer.json.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
}

describe("ROPC errors derived from the directory", () => {
  it.each([
    ["a wrong password", { password: "wrong" }, 50126, "invalid_grant"],
    ["a password with a trailing space", { password: `${DEMO_PASSWORD} ` }, 50126, "invalid_grant"],
    ["a user not in the tenant", { username: "nobody@contoso.com" }, 50034, "invalid_grant"],
    ["a federated user (no HRD policy)", { username: "federated@contoso.com" }, 50126, "invalid_grant"],
    ["a locked account", { username: "locked@contoso.com" }, 50053, "invalid_grant"],
    ["a disabled account", { username: "disabled@contoso.com" }, 50057, "invalid_grant"],
    ["a shared mailbox (sign-in blocked)", { username: "shared@contoso.com" }, 50057, "invalid_grant"],
    ["an expired password", { username: "expired@contoso.com" }, 50055, "invalid_grant"],
    ["a user under MFA", { username: "mfa@contoso.com" }, 50076, "invalid_grant"],
    ["a user not assigned to the app", { username: "unassigned@contoso.com" }, 50105, "invalid_grant"],
    [
      "a permission without admin consent",
      { scope: "https://graph.microsoft.com/Files.Read" },
      65001,
      "invalid_grant",
    ],
    [
      "an unknown client id",
      { clientId: "11111111-2222-4333-8444-555555555555" },
      700016,
      "unauthorized_client",
    ],
    ["an unknown tenant", { tenant: "fabrikam.com" }, 90002, "invalid_request"],
    ["the /common endpoint", { tenant: "common" }, 9001023, "invalid_request"],
    ["the /consumers endpoint", { tenant: "consumers" }, 9001023, "invalid_request"],
    [
      "scopes of two resources",
      { scope: "https://graph.microsoft.com/Mail.Read https://outlook.office.com/SMTP.Send" },
      700022,
      "invalid_scope",
    ],
    [
      "a short name with an Outlook URI (two resources)",
      { scope: "User.Read https://outlook.office.com/SMTP.Send" },
      700022,
      "invalid_scope",
    ],
    [
      "/.default mixed with a named scope",
      { scope: "https://graph.microsoft.com/.default https://graph.microsoft.com/Mail.Read" },
      70011,
      "invalid_scope",
    ],
    [
      "a resource of another cloud",
      { scope: "https://outlook.office365.us/IMAP.AccessAsUser.All" },
      500011,
      "invalid_resource",
    ],
    ["a missing scope", { scope: "" }, 900144, "invalid_request"],
  ])("refuses %s", async (_name, options, code, error) => {
    const answer = await passwordGrant(emulator, options as Parameters<typeof passwordGrant>[1]);
    expectAadsts(answer, code as number, error as string);
  });

  it("adds the suberror and claims challenge where Microsoft does", async () => {
    const mfa = await passwordGrant(emulator, { username: "mfa@contoso.com" });
    expect(mfa.json.suberror).toBe("basic_action");
    expect(JSON.parse(mfa.json.claims)).toHaveProperty("access_token.capolids");
    const consent = await passwordGrant(emulator, { scope: "https://graph.microsoft.com/Files.Read" });
    expect(consent.json.suberror).toBe("consent_required");
    expect(consent.json.error_description).toContain(`'${emulator.clientId}' named 'm365-mail demo'`);
    const expired = await passwordGrant(emulator, { username: "expired@contoso.com" });
    expect(expired.json.suberror).toBe("user_password_expired");
  });

  it("answers 401 invalid_client when public client flows are off, and for a secret on a public client", async () => {
    emulator.admin.updateApp(emulator.clientId, { publicClient: false });
    try {
      expectAadsts(await passwordGrant(emulator), 7000218, "invalid_client", 401);
    } finally {
      emulator.admin.updateApp(emulator.clientId, { publicClient: true });
    }
    expectAadsts(
      await passwordGrant(emulator, { extra: { client_secret: "abc" } }),
      700025,
      "invalid_client",
      401,
    );
  });

  it("echoes the client's correlation id", async () => {
    const answer = await passwordGrant(emulator, {
      password: "wrong",
      extra: { "client-request-id": "0f0e0d0c-0b0a-4908-8706-050403020100" },
    });
    expect(answer.json.correlation_id).toBe("0f0e0d0c-0b0a-4908-8706-050403020100");
    expect(answer.json.error_description).toContain("Correlation ID: 0f0e0d0c-0b0a-4908-8706-050403020100");
  });

  it("refuses missing parameters and unsupported grants", async () => {
    const url = `${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`;
    expectAadsts(await postForm(emulator, url, { client_id: emulator.clientId }), 900144, "invalid_request");
    expectAadsts(
      await postForm(emulator, url, {
        grant_type: "password",
        client_id: emulator.clientId,
        scope: "User.Read",
        password: "x",
      }),
      900144,
      "invalid_request",
    );
    expectAadsts(
      await postForm(emulator, url, {
        grant_type: "client_credentials",
        client_id: emulator.clientId,
        scope: "User.Read",
      }),
      70003,
      "unsupported_grant_type",
    );
  });

  it("accepts the tenant by id, by domain and as /organizations", async () => {
    for (const tenant of [emulator.tenantId, "contoso.com", "organizations"]) {
      expect((await passwordGrant(emulator, { tenant })).status).toBe(200);
    }
  });

  it("answers AADSTS50196 when one user and app ask too often", async () => {
    emulator.admin.setLoopDetection({ maxRequests: 3, windowSeconds: 600 });
    try {
      for (let i = 0; i < 3; i += 1)
        expect((await passwordGrant(emulator, { username: "alice@contoso.com" })).status).toBe(200);
      expectAadsts(await passwordGrant(emulator, { username: "alice@contoso.com" }), 50196, "invalid_grant");
      // Another user of the same app is not affected.
      expect((await passwordGrant(emulator)).status).toBe(200);
    } finally {
      emulator.admin.setLoopDetection({ maxRequests: 200, windowSeconds: 10 });
    }
  });

  it("counts refusals per AADSTS code", async () => {
    emulator.admin.resetCounts();
    await passwordGrant(emulator, { password: "wrong" });
    expect(emulator.admin.counts()).toMatchObject({
      "entra.token": 1,
      "entra.token.password": 1,
      "entra.token.password:support@contoso.com": 1,
      "entra.token.error.50126": 1,
    });
  });
});
