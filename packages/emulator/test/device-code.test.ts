import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEMO_PASSWORD, type Emulator } from "../src/index.js";
import { decodeJwt, httpsRequest, postForm, refreshGrant, startTestEmulator } from "./helpers.js";

const GRANT = "urn:ietf:params:oauth:grant-type:device_code";
const GRAPH_SCOPE = "https://graph.microsoft.com/.default offline_access openid profile";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});
beforeEach(() => {
  // Polls one second apart keep the tests short; Microsoft's default is 5.
  emulator.admin.updateDeviceCodeSettings({ intervalSeconds: 1, expiresInSeconds: 900 });
  emulator.admin.updateUser("mfa@contoso.com", { mfa: true });
});

function requestCode(scope = GRAPH_SCOPE, tenant = emulator.tenantId, clientId = emulator.clientId) {
  return postForm(emulator, `${emulator.authorityHost}/${tenant}/oauth2/v2.0/devicecode`, {
    client_id: clientId,
    scope,
  });
}

function poll(deviceCode: string, clientId = emulator.clientId) {
  return postForm(emulator, `${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`, {
    grant_type: GRANT,
    client_id: clientId,
    device_code: deviceCode,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("device code flow", () => {
  it("answers /devicecode in Microsoft's shape, then pending until approved, then tokens that satisfy MFA", async () => {
    const code = await requestCode();
    expect(code.status).toBe(200);
    expect(Object.keys(code.json)).toEqual([
      "user_code",
      "device_code",
      "verification_uri",
      "expires_in",
      "interval",
      "message",
    ]);
    expect(code.json.user_code).toMatch(/^[A-Z2-9]{9}$/);
    expect(code.json.verification_uri).toBe(`${emulator.authorityHost}/devicelogin`);
    expect(code.json.expires_in).toBe(900);
    expect(code.json.interval).toBe(1);
    expect(code.json.message).toContain(code.json.user_code);

    const pending = await poll(code.json.device_code);
    expect(pending.status).toBe(400);
    expect(pending.json.error).toBe("authorization_pending");
    expect(pending.json.error_codes).toEqual([70016]);

    // mfa@contoso.com cannot use ROPC; a device-code sign-in is an interactive sign-in with MFA.
    emulator.admin.approveDeviceCode(code.json.user_code, "mfa@contoso.com");
    await sleep(1000);
    const done = await poll(code.json.device_code);
    expect(done.status).toBe(200);
    expect(done.json.refresh_token).toBeTruthy();
    const { claims } = decodeJwt(done.json.access_token);
    expect(claims.upn).toBe("mfa@contoso.com");
    expect(claims.amr).toEqual(["pwd", "mfa"]);

    // The refresh token serves the other resource although the user is under MFA.
    const outlook = await refreshGrant(
      emulator,
      done.json.refresh_token,
      "https://outlook.office.com/.default offline_access",
    );
    expect(outlook.status).toBe(200);
    expect(decodeJwt(outlook.json.access_token).claims.aud).toBe("https://outlook.office.com");

    // A device code is redeemed once.
    await sleep(1000);
    expect((await poll(code.json.device_code)).json.error).toBe("invalid_grant");
  });

  it("answers slow_down when polled faster than the interval, and raises the interval by 5 s", async () => {
    const code = await requestCode();
    expect((await poll(code.json.device_code)).json.error).toBe("authorization_pending");
    const fast = await poll(code.json.device_code);
    expect(fast.status).toBe(400);
    expect(fast.json.error).toBe("slow_down");
    // One second later is now too soon as well: the interval is 6 s.
    await sleep(1100);
    expect((await poll(code.json.device_code)).json.error).toBe("slow_down");
    expect(emulator.admin.counts()["entra.token.error.slow_down"]).toBeGreaterThanOrEqual(2);
  });

  it("answers authorization_declined after a denial and expired_token after expires_in", async () => {
    const denied = await requestCode();
    emulator.admin.denyDeviceCode(denied.json.user_code);
    const declined = await poll(denied.json.device_code);
    expect(declined.status).toBe(400);
    expect(declined.json.error).toBe("authorization_declined");

    emulator.admin.updateDeviceCodeSettings({ expiresInSeconds: 1 });
    const short = await requestCode();
    expect(short.json.expires_in).toBe(1);
    await sleep(1100);
    const expired = await poll(short.json.device_code);
    expect(expired.json.error).toBe("expired_token");
    expect(expired.json.error_codes).toEqual([70019]);
    // An expired code can no longer be approved.
    expect(() => emulator.admin.approveDeviceCode(short.json.user_code, "support@contoso.com")).toThrow(
      /no device code/,
    );
  });

  it("refuses an unknown device code, a wrong client, an app without public client flows", async () => {
    const unknown = await poll("DAQABnot-a-code");
    expect(unknown.json.error).toBe("bad_verification_code");
    expect(unknown.json.error_codes).toEqual([70018]);

    const code = await requestCode();
    expect((await poll(code.json.device_code, "00000000-0000-0000-0000-000000000001")).json.error).toBe(
      "bad_verification_code",
    );

    emulator.admin.updateApp(emulator.clientId, { publicClient: false });
    try {
      const refused = await requestCode();
      expect(refused.status).toBe(401);
      expect(refused.json.error_codes).toEqual([7000218]);
    } finally {
      emulator.admin.updateApp(emulator.clientId, { publicClient: true });
    }
    const twoResources = await requestCode(
      "https://graph.microsoft.com/Mail.Read https://outlook.office.com/IMAP.AccessAsUser.All",
    );
    expect(twoResources.json.error_codes).toEqual([700022]);
  });

  it("approves and denies over the admin API and the verification page", async () => {
    const first = await requestCode();
    const viaAdmin = await httpsRequest(
      emulator,
      `${emulator.authorityHost}/_admin/device-codes/${first.json.user_code}/approve`,
      {
        method: "POST",
        body: JSON.stringify({ upn: "support@contoso.com" }),
        headers: { "content-type": "application/json" },
      },
    );
    expect(viaAdmin.status).toBe(200);
    expect(viaAdmin.json).toMatchObject({ userCode: first.json.user_code, state: "approved" });
    const listed = await httpsRequest(emulator, `${emulator.authorityHost}/_admin/device-codes`);
    expect(listed.text).not.toContain(first.json.device_code);
    expect(
      (
        await httpsRequest(emulator, `${emulator.authorityHost}/_admin/device-codes/NOPE/deny`, {
          method: "POST",
        })
      ).status,
    ).toBe(404);

    const page = await httpsRequest(emulator, `${emulator.authorityHost}/devicelogin`);
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.text).toContain('name="code"');

    const second = await requestCode();
    const wrongPassword = await postForm(emulator, `${emulator.authorityHost}/devicelogin`, {
      code: second.json.user_code,
      username: "alice@contoso.com",
      password: "wrong",
      action: "approve",
    });
    expect(wrongPassword.status).toBe(401);
    expect(wrongPassword.text).toContain("incorrect");
    // Lower case with a dash, as a person may type it.
    const typed = `${second.json.user_code.slice(0, 4)}-${second.json.user_code.slice(4)}`.toLowerCase();
    const approved = await postForm(emulator, `${emulator.authorityHost}/devicelogin`, {
      code: typed,
      username: "alice@contoso.com",
      password: DEMO_PASSWORD,
      action: "approve",
    });
    expect(approved.status).toBe(200);
    expect(approved.text).toContain("alice@contoso.com is signed in");
    const token = await poll(second.json.device_code);
    expect(decodeJwt(token.json.access_token).claims.upn).toBe("alice@contoso.com");

    const third = await requestCode();
    await postForm(emulator, `${emulator.authorityHost}/devicelogin`, {
      code: third.json.user_code,
      username: "",
      password: "",
      action: "deny",
    });
    expect((await poll(third.json.device_code)).json.error).toBe("authorization_declined");
  });

  it("still refuses a password-grant refresh token once the user is put under MFA", async () => {
    const ropc = await postForm(
      emulator,
      `${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`,
      {
        grant_type: "password",
        client_id: emulator.clientId,
        username: "alice@contoso.com",
        password: DEMO_PASSWORD,
        scope: GRAPH_SCOPE,
      },
    );
    expect(ropc.status).toBe(200);
    emulator.admin.updateUser("alice@contoso.com", { mfa: true });
    try {
      const refused = await refreshGrant(emulator, ropc.json.refresh_token, GRAPH_SCOPE);
      expect(refused.json.error_codes).toEqual([50076]);
    } finally {
      emulator.admin.updateUser("alice@contoso.com", { mfa: false });
    }
  });
});
