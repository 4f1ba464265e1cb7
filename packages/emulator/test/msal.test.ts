import { request } from "node:https";
import {
  type INetworkModule,
  InteractionRequiredAuthError,
  type NetworkResponse,
  PublicClientApplication,
} from "@azure/msal-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_PASSWORD, type Emulator } from "../src/index.js";
import { decodeJwt, startTestEmulator } from "./helpers.js";

let emulator: Emulator;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ emulator, cleanup } = await startTestEmulator());
});
afterAll(async () => {
  await cleanup();
});

/** A minimal msal network client that trusts the emulator's CA (msal 7 otherwise uses global fetch). */
function networkClient(ca: string): INetworkModule {
  const send = <T>(
    method: string,
    url: string,
    options?: { headers?: Record<string, string>; body?: string },
  ) =>
    new Promise<NetworkResponse<T>>((resolve, reject) => {
      const req = request(url, { method, ca, headers: options?.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers[k] = v;
          resolve({
            status: res.statusCode ?? 0,
            headers,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as T,
          });
        });
      });
      req.on("error", reject);
      req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
      req.end(options?.body);
    });
  return {
    sendGetRequestAsync: (url, options) => send("GET", url, options),
    sendPostRequestAsync: (url, options) => send("POST", url, options),
  };
}

function msalApp(): PublicClientApplication {
  return new PublicClientApplication({
    auth: {
      clientId: emulator.clientId,
      authority: emulator.authority,
      knownAuthorities: [new URL(emulator.authorityHost).host],
      authorityMetadata: emulator.authorityMetadata,
    },
    system: { networkClient: networkClient(emulator.caPem) },
  });
}

describe("@azure/msal-node against the emulator", () => {
  it("signs in with ROPC, then gets an Outlook token silently with the refresh token", async () => {
    const app = msalApp();
    emulator.admin.resetCounts();
    const signIn = await app.acquireTokenByUsernamePassword({
      username: "support@contoso.com",
      password: DEMO_PASSWORD,
      scopes: ["https://graph.microsoft.com/User.Read"],
    });
    expect(signIn?.account?.username).toBe("support@contoso.com");
    expect(signIn?.account?.tenantId).toBe(emulator.tenantId);
    expect(decodeJwt(signIn!.accessToken).claims.aud).toBe("https://graph.microsoft.com");

    const outlook = await app.acquireTokenSilent({
      account: signIn!.account!,
      scopes: ["https://outlook.office.com/IMAP.AccessAsUser.All"],
    });
    expect(decodeJwt(outlook.accessToken).claims).toMatchObject({
      aud: "https://outlook.office.com",
      upn: "support@contoso.com",
    });
    // The second resource came from the refresh token, not a second password grant.
    expect(emulator.admin.counts()).toMatchObject({
      "entra.token.password": 1,
      "entra.token.refresh_token": 1,
    });

    // And msal's cache now serves it without another request.
    const cached = await app.acquireTokenSilent({
      account: signIn!.account!,
      scopes: ["https://outlook.office.com/IMAP.AccessAsUser.All"],
    });
    expect(cached.accessToken).toBe(outlook.accessToken);
    expect(emulator.admin.counts()["entra.token"]).toBe(2);
  });

  it("surfaces MFA as InteractionRequiredAuthError with the AADSTS number", async () => {
    const error = await msalApp()
      .acquireTokenByUsernamePassword({
        username: "mfa@contoso.com",
        password: DEMO_PASSWORD,
        scopes: ["https://graph.microsoft.com/User.Read"],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InteractionRequiredAuthError);
    expect(String((error as InteractionRequiredAuthError).errorNo)).toBe("50076");
  });
});
