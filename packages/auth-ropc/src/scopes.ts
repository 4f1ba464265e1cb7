import { type CloudPreset, type Resource, scopesFor } from "@m365-mail/core";

export interface ScopeOptions {
  /** Graph permissions, short (`Mail.Read`) or full URIs. @default [".default"] */
  graph?: readonly string[];
  /** Outlook permissions (`SMTP.Send`, `IMAP.AccessAsUser.All`, ...). @default [".default"] */
  outlook?: readonly string[];
}

// `.default` asks for every delegated permission the admin consented to for that resource: adding a
// permission in the portal needs no code change, and a missing optional one does not fail sign-in.
const DEFAULT = [".default"] as const;

/** Full-URI scopes per resource; short Outlook names get the Outlook prefix (never a Graph token). */
export function resolveScopes(
  cloud: CloudPreset,
  options: ScopeOptions | undefined,
): Record<Resource, readonly string[]> {
  return {
    graph: scopesFor(cloud, "graph", options?.graph?.length ? options.graph : DEFAULT),
    outlook: scopesFor(cloud, "outlook", options?.outlook?.length ? options.outlook : DEFAULT),
  };
}
