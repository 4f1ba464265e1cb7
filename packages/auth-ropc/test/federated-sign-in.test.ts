import { type Logger, M365MailError } from "@m365-mail/core";
import { afterAll, describe, expect, it } from "vitest";
import { type FederationMode, federatedSignIn } from "../src/federation/federated-sign-in.js";
import { createHttpClient, type HttpClient } from "../src/http-client.js";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const real = createHttpClient({ timeoutMs: 2000 });
afterAll(() => real.close());

/** Entra ID's user-realm answer is given; every other request goes out through the real HTTP client. */
function realmAnswering(realm: Record<string, unknown>): HttpClient & { urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    async send(req) {
      urls.push(req.url);
      if (req.url.includes("/common/userrealm/")) {
        return { status: 200, headers: {}, text: JSON.stringify(realm) };
      }
      return real.send(req);
    },
    close: () => Promise.resolve(),
  };
}

const federated = (extra: Record<string, unknown>) => ({
  ver: "1.0",
  account_type: "Federated",
  domain_name: "adatum.com",
  federation_protocol: "WSTrust",
  cloud_audience_urn: "urn:federation:MicrosoftOnline",
  ...extra,
});

async function failureOf(promise: Promise<unknown>): Promise<M365MailError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  // Before the fix this was a raw TypeError ("Invalid URL") from adfsUnreachable's new URL(url).
  expect(error, String(error)).toBeInstanceOf(M365MailError);
  return error as M365MailError;
}

// Regression (audit, bug 5): a malformed AD FS address from user-realm discovery threw a raw TypeError.
describe.each<FederationMode>(["auto", "ws-trust"])("a malformed AD FS address (federation %s)", (mode) => {
  const signIn = (realm: Record<string, unknown>) =>
    federatedSignIn({
      mode,
      authorityHost: "https://login.example.test",
      username: "ops@adatum.com",
      http: realmAnswering(realm),
      logger: quiet,
    });

  it.each(["sts.adatum.com/adfs/services/trust/mex", "https://sts.adatum.com:99999/adfs/services/trust/mex"])(
    "federation_metadata_url %s is CONFIG_INVALID naming the domain's federation settings",
    async (url) => {
      const http = realmAnswering(federated({ federation_metadata_url: url }));
      const error = await failureOf(
        federatedSignIn({
          mode,
          authorityHost: "https://login.example.test",
          username: "ops@adatum.com",
          http,
          logger: quiet,
        }).prepare("S3cret-Passw0rd!"),
      );
      expect(error.code).toBe("CONFIG_INVALID");
      expect(error.message).toMatch(/adatum\.com/);
      expect(error.message).toMatch(/metadata/);
      expect(error.hint).toMatch(/MetadataExchangeUri/);
      expect(error.hint).toMatch(/Get-MgDomainFederationConfiguration/);
      expect(`${error.message} ${error.hint}`).not.toContain("S3cret-Passw0rd!");
      // Nothing was sent to the malformed address, and the password went nowhere.
      expect(http.urls).toHaveLength(1);
    },
  );

  it("a malformed federation_active_auth_url (no MEX document) is CONFIG_INVALID naming ActiveSignInUri", async () => {
    const error = await failureOf(
      signIn(
        federated({
          federation_active_auth_url: "https://sts.adatum.com:0x1/adfs/services/trust/13/usernamemixed",
        }),
      ).prepare("S3cret-Passw0rd!"),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.hint).toMatch(/ActiveSignInUri/);
    expect(`${error.message} ${error.hint}`).not.toContain("S3cret-Passw0rd!");
  });
});
