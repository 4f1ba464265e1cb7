import type { Resource } from "./contracts.js";
import { M365MailError } from "./errors.js";

/** One Microsoft cloud: where to sign in and where each protocol lives. Tokens never cross clouds. */
export interface CloudPreset {
  readonly name: CloudName;
  /** Entra ID host, e.g. `https://login.microsoftonline.com`. */
  readonly authorityHost: string;
  /** Graph origin, e.g. `https://graph.microsoft.com`. */
  readonly graphEndpoint: string;
  /** Resource URI that prefixes Outlook (IMAP/POP/SMTP) scopes. */
  readonly outlookResource: string;
  readonly imap: { readonly host: string; readonly port: number };
  readonly pop3: { readonly host: string; readonly port: number };
  readonly smtp: { readonly host: string; readonly port: number };
  /** 21Vianet may need the v1 `resource=` form of the password grant. */
  readonly supportsScopeParameter: boolean;
}

export type CloudName = "global" | "usgovhigh" | "usdod" | "china";

// Source: https://learn.microsoft.com/en-us/graph/deployments (see shared/m365-facts.md).
export const CLOUDS: Readonly<Record<CloudName, CloudPreset>> = {
  global: {
    name: "global",
    authorityHost: "https://login.microsoftonline.com",
    graphEndpoint: "https://graph.microsoft.com",
    outlookResource: "https://outlook.office.com",
    imap: { host: "outlook.office365.com", port: 993 },
    pop3: { host: "outlook.office365.com", port: 995 },
    smtp: { host: "smtp.office365.com", port: 587 },
    supportsScopeParameter: true,
  },
  usgovhigh: {
    name: "usgovhigh",
    authorityHost: "https://login.microsoftonline.us",
    graphEndpoint: "https://graph.microsoft.us",
    outlookResource: "https://outlook.office365.us",
    imap: { host: "outlook.office365.us", port: 993 },
    pop3: { host: "outlook.office365.us", port: 995 },
    smtp: { host: "smtp.office365.us", port: 587 },
    supportsScopeParameter: true,
  },
  usdod: {
    name: "usdod",
    authorityHost: "https://login.microsoftonline.us",
    graphEndpoint: "https://dod-graph.microsoft.us",
    outlookResource: "https://outlook-dod.office365.us",
    imap: { host: "outlook-dod.office365.us", port: 993 },
    pop3: { host: "outlook-dod.office365.us", port: 995 },
    smtp: { host: "outlook-dod.office365.us", port: 587 },
    supportsScopeParameter: true,
  },
  china: {
    name: "china",
    authorityHost: "https://login.chinacloudapi.cn",
    graphEndpoint: "https://microsoftgraph.chinacloudapi.cn",
    outlookResource: "https://partner.outlook.cn",
    imap: { host: "partner.outlook.cn", port: 993 },
    pop3: { host: "partner.outlook.cn", port: 995 },
    smtp: { host: "smtp.partner.outlook.cn", port: 587 },
    supportsScopeParameter: false,
  },
};

/** Accepts a preset name or a full preset (for the emulator or a private endpoint). */
export function resolveCloud(cloud: CloudName | CloudPreset | undefined): CloudPreset {
  if (cloud === undefined) return CLOUDS.global;
  if (typeof cloud === "object") return cloud;
  const preset = CLOUDS[cloud];
  if (!preset) {
    throw new M365MailError("CONFIG_INVALID", `unknown cloud "${String(cloud)}"`, {
      hint: `Use one of: ${Object.keys(CLOUDS).join(", ")}.`,
    });
  }
  return preset;
}

/** Delegated permissions by the short names the set-up guide uses. */
export const GRAPH_PERMISSIONS = [
  "User.Read",
  "Calendars.Read",
  "Mail.Read",
  "Mail.ReadWrite",
  "Mail.Send",
  "Mail.Read.Shared",
  "Mail.Send.Shared",
] as const;
export const OUTLOOK_PERMISSIONS = ["SMTP.Send", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All"] as const;

/**
 * Full-URI scopes for one resource. The short form of an Outlook scope
 * (`IMAP.AccessAsUser.All`) yields a *Graph* token — the most common mistake — so we always
 * prefix with the resource URI.
 */
export function scopesFor(cloud: CloudPreset, resource: Resource, permissions?: readonly string[]): string[] {
  const base = resource === "graph" ? cloud.graphEndpoint : cloud.outlookResource;
  const names =
    permissions ??
    (resource === "graph"
      ? ["User.Read", "Mail.ReadWrite", "Mail.Send", "Calendars.Read"]
      : OUTLOOK_PERMISSIONS);
  return names.map((name) => (name.includes("://") ? name : `${base}/${name}`));
}

/** `https://graph.microsoft.com/.default` — every permission the app was granted for that resource. */
export function defaultScopeFor(cloud: CloudPreset, resource: Resource): string {
  return `${resource === "graph" ? cloud.graphEndpoint : cloud.outlookResource}/.default`;
}
