import { createHash } from "node:crypto";
import { M365MailError } from "@m365-mail/core";
import type { Directory, DirectoryApp, DirectoryTenant, DirectoryUser } from "./directory.js";

/** Tenant-wide switches the admin API may change. */
export type TenantPatch = Partial<Pick<DirectoryTenant, "securityDefaults" | "smtpAuthEnabled">>;

/** Fields of a user the admin API may change (everything but the UPN). */
export type UserPatch = Partial<Omit<DirectoryUser, "upn">>;
/** Fields of an app registration the admin API may change (everything but the client id). */
export type AppPatch = Partial<Omit<DirectoryApp, "clientId">>;

/**
 * The live directory: lookups by tenant id or domain, by UPN and by client id, and the admin changes.
 * Every answer of the emulator reads from here, so a change applies to the next request.
 */
export class DirectoryStore {
  private directory: Directory;

  constructor(directory: Directory) {
    // A copy: admin changes must not leak into the caller's object (or the next emulator started from it).
    this.directory = structuredClone(directory);
  }

  get(): Directory {
    return this.directory;
  }

  tenants(): DirectoryTenant[] {
    return this.directory.tenants;
  }

  findTenant(idOrDomain: string): DirectoryTenant | undefined {
    const key = idOrDomain.toLowerCase();
    return this.directory.tenants.find(
      (t) => t.id.toLowerCase() === key || t.domains.some((d) => d.toLowerCase() === key),
    );
  }

  findUser(upn: string): { tenant: DirectoryTenant; user: DirectoryUser } | undefined {
    const key = upn.trim().toLowerCase();
    for (const tenant of this.directory.tenants) {
      const user = tenant.users.find((u) => u.upn.toLowerCase() === key);
      if (user) return { tenant, user };
    }
    return undefined;
  }

  findApp(tenant: DirectoryTenant, clientId: string): DirectoryApp | undefined {
    const key = clientId.toLowerCase();
    return tenant.apps.find((a) => a.clientId.toLowerCase() === key);
  }

  findAppAnywhere(clientId: string): { tenant: DirectoryTenant; app: DirectoryApp } | undefined {
    for (const tenant of this.directory.tenants) {
      const app = this.findApp(tenant, clientId);
      if (app) return { tenant, app };
    }
    return undefined;
  }

  tokenLifetimeSeconds(): number {
    return this.directory.tokenLifetimeSeconds ?? 3600;
  }

  setTokenLifetimeSeconds(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new M365MailError(
        "CONFIG_INVALID",
        `token lifetime must be a positive number of seconds, got ${seconds}`,
        {
          source: "emulator",
          hint: "Send { seconds: 3600 } (Microsoft issues 3600–5400).",
        },
      );
    }
    this.directory.tokenLifetimeSeconds = seconds;
  }

  updateUser(upn: string, patch: UserPatch): DirectoryUser {
    const found = this.findUser(upn);
    if (!found) {
      throw new M365MailError("NOT_FOUND", `no user ${upn} in the emulator's directory`, {
        source: "emulator",
        hint: "Use a UPN listed by GET /_admin/directory.",
      });
    }
    const { upn: _ignored, ...rest } = patch as UserPatch & { upn?: string };
    Object.assign(found.user, rest);
    return found.user;
  }

  updateTenant(idOrDomain: string, patch: TenantPatch): DirectoryTenant {
    const tenant = this.findTenant(idOrDomain);
    if (!tenant) {
      throw new M365MailError("NOT_FOUND", `no tenant ${idOrDomain} in the emulator's directory`, {
        source: "emulator",
        hint: "Use a tenant id or domain listed by GET /_admin/directory.",
      });
    }
    if (patch.securityDefaults !== undefined) tenant.securityDefaults = patch.securityDefaults;
    if (patch.smtpAuthEnabled !== undefined) tenant.smtpAuthEnabled = patch.smtpAuthEnabled;
    return tenant;
  }

  updateApp(clientId: string, patch: AppPatch): DirectoryApp {
    const found = this.findAppAnywhere(clientId);
    if (!found) {
      throw new M365MailError("NOT_FOUND", `no app registration ${clientId} in the emulator's directory`, {
        source: "emulator",
        hint: "Use a clientId listed by GET /_admin/directory.",
      });
    }
    const { clientId: _ignored, ...rest } = patch as AppPatch & { clientId?: string };
    Object.assign(found.app, rest);
    return found.app;
  }
}

/** The user's object id: the configured one, else a stable GUID derived from the UPN. */
export function userObjectId(user: DirectoryUser): string {
  return user.id ?? guidFrom(`oid:${user.upn.toLowerCase()}`);
}

/** A deterministic GUID (version 5 layout) from any text. */
export function guidFrom(text: string): string {
  const hex = createHash("sha1").update(text).digest("hex");
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The directory without passwords, for the admin API and the CLI. */
export function publicDirectory(directory: Directory): Directory {
  const copy = structuredClone(directory);
  for (const tenant of copy.tenants) for (const user of tenant.users) user.password = "[REDACTED]";
  return copy;
}
