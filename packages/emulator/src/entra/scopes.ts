import type { Resource } from "@m365-mail/core";

/** Microsoft Graph's application id: what a short scope name resolves to. */
export const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";
/** Office 365 Exchange Online's application id. */
export const EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000";

/** Resource identifiers Entra maps to each resource, lower-cased, without trailing slash. */
const RESOURCE_IDS: Record<string, Resource> = {
  "https://graph.microsoft.com": "graph",
  [GRAPH_APP_ID]: "graph",
  "https://outlook.office.com": "outlook",
  "https://outlook.office365.com": "outlook",
  [EXCHANGE_APP_ID]: "outlook",
};

export const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"] as const;

export interface RequestedResource {
  resource: Resource;
  /** The resource identifier as the client wrote it ("https://graph.microsoft.com"), or undefined for short names. */
  identifier: string | undefined;
  /** Permission names asked for, e.g. ["Mail.Read"]; empty with `.default`. */
  permissions: string[];
  isDefault: boolean;
}

export type ScopeParse =
  | { ok: true; resource: RequestedResource; oidc: Set<string> }
  | { ok: false; code: 700022 | 70011 | 500011 | 900144; params: Record<string, string> };

/**
 * Parses a v2 `scope` parameter the way Entra does: full URIs name their resource; a name without a
 * prefix (`User.Read`, and also `IMAP.AccessAsUser.All`) means Microsoft Graph; `openid profile email
 * offline_access` are sign-in scopes; no resource at all means Graph. Two resources → AADSTS700022.
 */
export function parseScopeParameter(scope: string | undefined): ScopeParse {
  const items = (scope ?? "").split(/\s+/).filter(Boolean);
  if (items.length === 0) return { ok: false, code: 900144, params: { name: "scope" } };
  const oidc = new Set<string>();
  const perResource = new Map<string, RequestedResource>();
  for (const item of items) {
    const lower = item.toLowerCase();
    if ((OIDC_SCOPES as readonly string[]).includes(lower)) {
      oidc.add(lower);
      continue;
    }
    const slash = item.lastIndexOf("/");
    let identifier: string | undefined;
    let permission: string;
    let resource: Resource | undefined;
    if (slash > 0) {
      identifier = item.slice(0, slash);
      permission = item.slice(slash + 1);
      resource = RESOURCE_IDS[identifier.toLowerCase().replace(/\/+$/, "")];
      if (!resource) return { ok: false, code: 500011, params: { resource: identifier } };
    } else {
      permission = item;
      resource = "graph";
    }
    // Two spellings of one resource are still one resource; the first spelling is echoed back.
    const entry = perResource.get(resource) ?? { resource, identifier, permissions: [], isDefault: false };
    if (permission.toLowerCase() === ".default") entry.isDefault = true;
    else if (permission !== "") entry.permissions.push(permission);
    perResource.set(resource, entry);
  }
  if (perResource.size > 1) return { ok: false, code: 700022, params: { scope: items.join(" ") } };
  const resource = [...perResource.values()][0] ?? {
    resource: "graph" as const,
    identifier: undefined,
    permissions: [],
    isDefault: false,
  };
  if (resource.isDefault && resource.permissions.length > 0) {
    return {
      ok: false,
      code: 70011,
      params: {
        scope: items.join(" "),
        reason: ".default scope can't be combined with resource-specific scopes.",
      },
    };
  }
  return { ok: true, resource, oidc };
}

/** Case-insensitive membership, as Entra compares permission names. */
export function includesPermission(list: readonly string[] | undefined, name: string): boolean {
  const lower = name.toLowerCase();
  return (list ?? []).some((p) => p.toLowerCase() === lower);
}

/**
 * The `aud` Entra writes: the resource as the client named it. A full URI gives the URI
 * ("https://graph.microsoft.com", "https://outlook.office.com"); a short name or an app id gives the app id.
 */
export function audienceFor(requested: RequestedResource): string {
  const id = requested.identifier;
  if (id?.includes("://")) return id.toLowerCase().replace(/\/+$/, "");
  return requested.resource === "graph" ? GRAPH_APP_ID : EXCHANGE_APP_ID;
}

/** Which resource an `aud` value belongs to, or undefined for any other audience. */
export function resourceOfAudience(aud: unknown): Resource | undefined {
  return typeof aud === "string" ? RESOURCE_IDS[aud.toLowerCase().replace(/\/+$/, "")] : undefined;
}
