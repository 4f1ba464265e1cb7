import type { AdfsService } from "../adfs/adfs-service.js";
import { federatedDomain } from "../adfs/federation.js";
import type { DirectoryStore } from "../directory-store.js";

/**
 * `GET /common/userrealm/{upn}?api-version=1.0`, in the shape MSAL.NET's `UserRealmDiscoveryResponse`
 * and its test fixtures show: `Federated` with the AD FS MEX and active endpoint, `Managed`, or
 * `Unknown` for a domain no tenant has verified.
 */
export function userRealm(
  store: DirectoryStore,
  adfs: AdfsService | undefined,
  upn: string,
): Record<string, unknown> {
  const domain = (upn.split("@")[1] ?? "").toLowerCase();
  const common = { ver: "1.0", cloud_instance_name: "microsoftonline.com" };
  const fed = domain ? federatedDomain(store, domain) : undefined;
  if (fed && adfs) {
    return {
      ...common,
      account_type: "Federated",
      domain_name: domain,
      federation_protocol: "WSTrust",
      federation_metadata_url: adfs.mexUrl(),
      federation_active_auth_url: adfs.activeAuthUrl(),
      cloud_audience_urn: "urn:federation:MicrosoftOnline",
    };
  }
  if (domain && store.findTenant(domain)) {
    return {
      ...common,
      account_type: "Managed",
      domain_name: domain,
      cloud_audience_urn: "urn:federation:MicrosoftOnline",
    };
  }
  return { ...common, account_type: "Unknown" };
}
