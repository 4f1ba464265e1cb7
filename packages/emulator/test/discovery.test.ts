import { createPublicKey, verify } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Emulator } from "../src/index.js";
import { httpsRequest, passwordGrant, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

describe("OpenID discovery and keys", () => {
  it("serves the tenant's openid-configuration with the emulator's endpoints", async () => {
    const answer = await httpsRequest(
      emulator,
      `${emulator.authority}/v2.0/.well-known/openid-configuration`,
    );
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    const base = emulator.authority;
    expect(answer.json).toMatchObject({
      issuer: `${base}/v2.0`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      id_token_signing_alg_values_supported: ["RS256"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
    });
    expect(JSON.parse(emulator.authorityMetadata)).toEqual(answer.json);
    // By domain too; an unknown tenant is AADSTS90002.
    expect(
      (
        await httpsRequest(
          emulator,
          `${emulator.authorityHost}/contoso.com/v2.0/.well-known/openid-configuration`,
        )
      ).json.issuer,
    ).toBe(`${base}/v2.0`);
    const unknown = await httpsRequest(
      emulator,
      `${emulator.authorityHost}/fabrikam.com/v2.0/.well-known/openid-configuration`,
    );
    expect(unknown.status).toBe(400);
    expect(unknown.json.error_codes).toEqual([90002]);
  });

  it("publishes the signing key: its kid and x5t match the tokens and it verifies them", async () => {
    const keys = await httpsRequest(emulator, `${emulator.authority}/discovery/v2.0/keys`);
    expect(keys.status).toBe(200);
    const [key] = keys.json.keys;
    expect(key).toMatchObject({ kty: "RSA", use: "sig", e: "AQAB" });
    expect(key.x5c).toHaveLength(1);
    const token: string = (await passwordGrant(emulator)).json.access_token;
    const [h, c, s] = token.split(".");
    const header = JSON.parse(Buffer.from(h!, "base64url").toString());
    expect(header.kid).toBe(key.kid);
    expect(header.x5t).toBe(key.x5t);
    const publicKey = createPublicKey({ key: { kty: "RSA", n: key.n, e: key.e }, format: "jwk" });
    expect(verify("sha256", Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s!, "base64url"))).toBe(true);
  });

  it("answers msal's instance discovery with the emulator as its only alias", async () => {
    const host = new URL(emulator.authorityHost).host;
    const authorize = encodeURIComponent(`${emulator.authority}/oauth2/v2.0/authorize`);
    const answer = await httpsRequest(
      emulator,
      `${emulator.authorityHost}/common/discovery/instance?api-version=1.1&authorization_endpoint=${authorize}`,
    );
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      tenant_discovery_endpoint: `${emulator.authority}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    });
  });

  it("answers an unknown route with 404 JSON and a GET on the token endpoint with 405", async () => {
    expect((await httpsRequest(emulator, `${emulator.authorityHost}/nothing/here`)).status).toBe(404);
    expect((await httpsRequest(emulator, `${emulator.authority}/oauth2/v2.0/token`)).status).toBe(405);
  });
});
