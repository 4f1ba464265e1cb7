import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALL_MAIL, type GraphFixture, startGraphFixture } from "./graph-fixtures.js";
import { passwordGrant } from "./helpers.js";

let f: GraphFixture;

beforeAll(async () => {
  f = await startGraphFixture();
});
afterAll(async () => {
  await f.cleanup();
});

function expectGraphError(
  answer: { status: number; headers: Record<string, unknown>; json: any },
  status: number,
  code: string,
) {
  expect(answer.status).toBe(status);
  expect(String(answer.headers["content-type"])).toMatch(/^application\/json/);
  expect(answer.json.error.code).toBe(code);
  expect(typeof answer.json.error.message).toBe("string");
  expect(answer.json.error.innerError).toMatchObject({
    date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/),
    "request-id": answer.headers["request-id"],
    "client-request-id": answer.headers["client-request-id"],
  });
}

describe("Graph /v1.0/me", () => {
  it("answers the signed-in user with Graph's user shape", async () => {
    const token = await f.token(["User.Read"]);
    const answer = await f.call("GET", "/v1.0/me", { token });
    expect(answer.status).toBe(200);
    expect(String(answer.headers["content-type"])).toMatch(/^application\/json;odata\.metadata=minimal/);
    expect(answer.headers["request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.json).toMatchObject({
      "@odata.context": `${f.origin}/v1.0/$metadata#users/$entity`,
      displayName: "Contoso Support",
      userPrincipalName: "support@contoso.com",
      mail: "support@contoso.com",
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      businessPhones: [],
    });
  });

  it("echoes client-request-id", async () => {
    const token = await f.token(["User.Read"]);
    const answer = await f.call("GET", "/v1.0/me", {
      token,
      headers: { "client-request-id": "my-correlation-1" },
    });
    expect(answer.headers["client-request-id"]).toBe("my-correlation-1");
  });
});

describe("401 InvalidAuthenticationToken", () => {
  it("without a token: Access token is empty", async () => {
    const answer = await f.call("GET", "/v1.0/me");
    expectGraphError(answer, 401, "InvalidAuthenticationToken");
    expect(answer.json.error.message).toBe("Access token is empty.");
    expect(answer.headers["www-authenticate"]).toMatch(/^Bearer /);
  });

  it("with a malformed token", async () => {
    const answer = await f.call("GET", "/v1.0/me", { token: "not-a-jwt" });
    expectGraphError(answer, 401, "InvalidAuthenticationToken");
  });

  it("with a forged signature", async () => {
    const token = await f.token(["User.Read"]);
    const [h, c] = token.split(".");
    const answer = await f.call("GET", "/v1.0/me", { token: `${h}.${c}.${"A".repeat(342)}` });
    expectGraphError(answer, 401, "InvalidAuthenticationToken");
  });

  it("with an Outlook (IMAP) token: says the audience is wrong", async () => {
    const outlook = await passwordGrant(f.emulator, {
      scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    });
    const answer = await f.call("GET", "/v1.0/me/messages", { token: outlook.json.access_token });
    expectGraphError(answer, 401, "InvalidAuthenticationToken");
    expect(answer.json.error.message).toBe("Access token validation failure. Invalid audience.");
  });

  it("after the user's tokens were revoked", async () => {
    const token = (
      await passwordGrant(f.emulator, {
        username: "alice@contoso.com",
        scope: "https://graph.microsoft.com/User.Read",
      })
    ).json.access_token;
    expect((await f.call("GET", "/v1.0/me", { token })).status).toBe(200);
    f.emulator.admin.revokeTokens("alice@contoso.com");
    const answer = await f.call("GET", "/v1.0/me", { token });
    expectGraphError(answer, 401, "InvalidAuthenticationToken");
  });
});

describe("403 ErrorAccessDenied names the missing permission", () => {
  it.each([
    ["GET", "/v1.0/me/messages", ["User.Read"], "Mail.Read"],
    ["GET", "/v1.0/me/mailFolders", ["User.Read"], "Mail.Read"],
    ["PATCH", "/v1.0/me/messages/x", ["User.Read", "Mail.Read"], "Mail.ReadWrite"],
    ["POST", "/v1.0/me/sendMail", ["User.Read", "Mail.ReadWrite"], "Mail.Send"],
    [
      "GET",
      "/v1.0/me/calendarView?startDateTime=2020-01-01T00:00:00Z&endDateTime=2020-01-02T00:00:00Z",
      ["User.Read"],
      "Calendars.Read",
    ],
    ["GET", "/v1.0/me", ["Mail.Read"], "User.Read"],
  ])("%s %s with %j needs %s", async (method, path, permissions, needed) => {
    const token = await f.limitedToken(permissions);
    const answer = await f.call(method, path, { token, body: method === "GET" ? undefined : {} });
    expectGraphError(answer, 403, "ErrorAccessDenied");
    expect(answer.json.error.message).toBe("Access is denied. Check credentials and try again.");
    expect(answer.headers["x-emulator-required-permission"]).toBe(needed);
  });
});

describe("Graph-shaped errors for bad requests", () => {
  it("404 ErrorItemNotFound for an unknown message id", async () => {
    const token = await f.token(ALL_MAIL);
    const answer = await f.call("GET", "/v1.0/me/messages/AAMkAGnotthere", { token });
    expectGraphError(answer, 404, "ErrorItemNotFound");
  });

  it("400 BadRequest for a segment Graph has no resource for", async () => {
    const token = await f.token(ALL_MAIL);
    const answer = await f.call("GET", "/v1.0/me/nonsense", { token });
    expectGraphError(answer, 400, "BadRequest");
    expect(answer.json.error.message).toBe("Resource not found for the segment 'nonsense'.");
  });

  it("400 for an unknown API version", async () => {
    const token = await f.token(ALL_MAIL);
    const answer = await f.call("GET", "/v2.0/me", { token });
    expectGraphError(answer, 400, "BadRequest");
    expect(answer.json.error.message).toBe("Invalid version: v2.0");
  });

  it("404 ErrorInvalidUser for a mailbox that does not exist", async () => {
    const token = await f.token(ALL_MAIL);
    const answer = await f.call("GET", "/v1.0/users/nobody@contoso.com/messages", { token });
    expectGraphError(answer, 404, "ErrorInvalidUser");
  });
});
