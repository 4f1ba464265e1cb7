import { M365MailError } from "@m365-mail/core";
import type { RequestCounters } from "../context.js";
import type { DirectoryStore } from "../directory-store.js";
import { federationOf } from "./federation.js";
import { mexDocument } from "./mex-document.js";
import { checkSignedAssertion, ENTRA_AUDIENCES, type SigningMaterial } from "./saml-assertion.js";
import { handleWsTrust, type SoapAnswer, type WsTrustVersion } from "./ws-trust-endpoint.js";

/** Switches of the emulated AD FS (admin API `GET/PATCH /_admin/adfs`). */
export interface AdfsSettings {
  /** The MEX document lists (and the server serves) `/adfs/services/trust/13/usernamemixed`. @default true */
  wsTrust13: boolean;
  /** The same for `/adfs/services/trust/2005/usernamemixed`. @default true */
  wsTrust2005: boolean;
  /** `/adfs/services/trust/mex` answers; off: 404 (Entra ID still names it). @default true */
  mex: boolean;
  /** Off: every connection to AD FS is dropped, as when it cannot be reached. @default true */
  reachable: boolean;
  /** Lifetime of issued assertions. @default 3600 */
  assertionLifetimeSeconds: number;
}

export type AssertionVerdict =
  | { ok: true; upn: string; version: "1.1" | "2.0" }
  | { ok: false; code: 50006 | 50008 | 50013 | 50107; params: Record<string, string> };

/**
 * The emulated AD FS of the directory's federated domains: its MEX document, the WS-Trust
 * usernamemixed endpoints, and — for Entra ID's token endpoint — the check of the assertions it issued.
 */
export class AdfsService {
  readonly settings: AdfsSettings = {
    wsTrust13: true,
    wsTrust2005: true,
    mex: true,
    reachable: true,
    assertionLifetimeSeconds: 3600,
  };

  constructor(
    private readonly store: DirectoryStore,
    private readonly counters: RequestCounters,
    private readonly signing: SigningMaterial,
    /** AD FS origin, known once it listens. */
    readonly origin: () => string,
  ) {}

  /** `http://{host}/adfs/services/trust`: AD FS writes its issuer with http://, as real ones do. */
  issuer(): string {
    return `http://${new URL(this.origin()).host}/adfs/services/trust`;
  }

  mexUrl(): string {
    return `${this.origin()}/adfs/services/trust/mex`;
  }

  activeAuthUrl(): string {
    return `${this.origin()}/adfs/services/trust/2005/usernamemixed`;
  }

  mex(): string {
    return mexDocument({
      origin: this.origin(),
      wsTrust13: this.settings.wsTrust13,
      wsTrust2005: this.settings.wsTrust2005,
    });
  }

  endpointEnabled(version: WsTrustVersion): boolean {
    return version === "13" ? this.settings.wsTrust13 : this.settings.wsTrust2005;
  }

  wsTrust(
    version: WsTrustVersion,
    headers: Record<string, string | string[] | undefined>,
    body: string,
  ): SoapAnswer {
    return handleWsTrust(
      {
        store: this.store,
        counters: this.counters,
        signing: this.signing,
        issuer: this.issuer(),
        assertionLifetimeSeconds: this.settings.assertionLifetimeSeconds,
      },
      version,
      headers,
      body,
    );
  }

  updateSettings(patch: Partial<AdfsSettings>): AdfsSettings {
    for (const [key, value] of Object.entries(patch ?? {})) {
      if (!(key in this.settings)) {
        throw new M365MailError("CONFIG_INVALID", `unknown AD FS setting "${key}"`, {
          source: "emulator",
          hint: `Settings: ${Object.keys(this.settings).join(", ")}.`,
        });
      }
      const expected = typeof this.settings[key as keyof AdfsSettings];
      if (typeof value !== expected || (expected === "number" && !((value as number) > 0))) {
        throw new M365MailError(
          "CONFIG_INVALID",
          `AD FS setting "${key}" must be a ${expected === "number" ? "positive number" : "boolean"}`,
          {
            source: "emulator",
          },
        );
      }
    }
    Object.assign(this.settings, patch);
    return { ...this.settings };
  }

  /**
   * What Entra ID checks in a SAML bearer grant: signature by this AD FS (byte-exact), the grant type
   * against the SAML version, issuer, validity window, audience, and a federated user behind the UPN.
   */
  verifyAssertion(xml: string, grantVersion: "1.1" | "2.0"): AssertionVerdict {
    const check = checkSignedAssertion(xml, this.signing.certPem);
    if (!check.ok) {
      return check.reason === "malformed"
        ? { ok: false, code: 50008, params: { detail: check.detail } }
        : { ok: false, code: 50006, params: {} };
    }
    if (check.version !== grantVersion) {
      return {
        ok: false,
        code: 50008,
        params: {
          detail: `A SAML ${check.version} assertion was sent with the SAML ${grantVersion} grant type.`,
        },
      };
    }
    if (check.issuer !== this.issuer()) return { ok: false, code: 50107, params: { issuer: check.issuer } };
    const now = Date.now();
    // Five minutes of clock skew, as Entra ID allows.
    if (!(check.notBefore - 300_000 <= now)) {
      return { ok: false, code: 50013, params: { detail: "the assertion is not yet valid" } };
    }
    if (!(now < check.notOnOrAfter)) {
      return {
        ok: false,
        code: 50013,
        params: { detail: "the assertion has expired (NotOnOrAfter is in the past)" },
      };
    }
    if (!ENTRA_AUDIENCES.includes(check.audience)) {
      return {
        ok: false,
        code: 50013,
        params: { detail: `the audience '${check.audience}' is not Microsoft Online` },
      };
    }
    const fed = federationOf(this.store, check.upn);
    if (!fed) return { ok: false, code: 50008, params: { detail: `No federated user '${check.upn}'.` } };
    return { ok: true, upn: fed.user.upn, version: check.version };
  }
}
