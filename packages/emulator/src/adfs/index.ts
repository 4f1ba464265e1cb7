export { createAdfsHandler } from "./adfs-server.js";
export { AdfsService, type AdfsSettings, type AssertionVerdict } from "./adfs-service.js";
export { federatedDomain, federationOf, type SamlVersion, type UserFederation } from "./federation.js";
