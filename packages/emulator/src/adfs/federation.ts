import type { DirectoryTenant, DirectoryUser } from "../directory.js";
import type { DirectoryStore } from "../directory-store.js";

export type SamlVersion = "1.1" | "2.0";

/** How a federated user signs in: through the emulator's AD FS, with this SAML version. */
export interface UserFederation {
  tenant: DirectoryTenant;
  user: DirectoryUser;
  domain: string;
  samlVersion: SamlVersion;
}

/** The tenant that federates `domain` to AD FS, with the domain's settings. */
export function federatedDomain(
  store: DirectoryStore,
  domain: string,
): { tenant: DirectoryTenant; samlVersion: SamlVersion } | undefined {
  const key = domain.toLowerCase();
  for (const tenant of store.tenants()) {
    const fed = (tenant.federatedDomains ?? []).find((d) => d.domain.toLowerCase() === key);
    if (fed) return { tenant, samlVersion: fed.samlVersion ?? "1.1" };
  }
  return undefined;
}

/** Undefined for a managed (cloud-password) user. */
export function federationOf(store: DirectoryStore, upn: string): UserFederation | undefined {
  const found = store.findUser(upn);
  if (!found) return undefined;
  const domain = found.user.upn.split("@")[1]!.toLowerCase();
  const fed = federatedDomain(store, domain);
  if (!fed && !found.user.federated) return undefined;
  return {
    tenant: found.tenant,
    user: found.user,
    domain,
    samlVersion: found.user.samlVersion ?? fed?.samlVersion ?? "1.1",
  };
}
