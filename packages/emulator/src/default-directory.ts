import { readFile } from "node:fs/promises";
import { GRAPH_PERMISSIONS, M365MailError, OUTLOOK_PERMISSIONS } from "@m365-mail/core";
import type { Directory, DirectoryEvent, DirectoryUser } from "./directory.js";

/** Tenant id of the demo directory (contoso.com). Fixed so that examples and docs can name it. */
export const DEMO_TENANT_ID = "5e7a3f0c-2b1d-4c8e-9f6a-0d4b3c2a1e9f";
/** Client id of the demo app registration "m365-mail demo". */
export const DEMO_CLIENT_ID = "b7c1d9e4-6a2f-4f3b-8e5d-1c0a9b8f7e6d";
/** Password of every demo user. The emulator is a test double: never reuse it anywhere real. */
export const DEMO_PASSWORD = "Demo-Passw0rd!";

/**
 * The demo directory: tenant contoso.com, the app "m365-mail demo" with every permission granted, the
 * mailbox support@, a second user alice@, a shared mailbox, and one user per ROPC failure; the domain
 * adatum.com is federated to the emulator's AD FS (ops@ gets SAML 1.1, saml2@ SAML 2.0, adlocked@ and
 * adexpired@ are refused by AD FS).
 * Calendar events are placed around `now` so that "this week" always has something in it.
 */
export function defaultDirectory(now: Date = new Date()): Directory {
  const user = (local: string, displayName: string, extra: Partial<DirectoryUser> = {}): DirectoryUser => ({
    upn: `${local}@contoso.com`,
    displayName,
    password: DEMO_PASSWORD,
    ...extra,
  });
  const adatum = (local: string, displayName: string, extra: Partial<DirectoryUser> = {}): DirectoryUser => ({
    upn: `${local}@adatum.com`,
    displayName,
    password: DEMO_PASSWORD,
    ...extra,
  });
  const users: DirectoryUser[] = [
    user("support", "Contoso Support", { events: demoEvents(now) }),
    user("alice", "Alice Wilber"),
    user("shared", "Contoso Shared Inbox", { shared: true, delegates: ["support@contoso.com"] }),
    user("mfa", "MFA Required User", { mfa: true }),
    user("locked", "Locked User", { locked: true }),
    user("disabled", "Disabled User", { disabled: true }),
    user("expired", "Expired Password User", { passwordExpired: true }),
    user("federated", "Federated User", { federated: true }),
    user("unassigned", "Unassigned User"),
    user("nosmtp", "No SMTP AUTH User", { mailboxProtocols: { smtpAuth: false } }),
    user("noimap", "No IMAP User", { mailboxProtocols: { imap: false } }),
    user("nopop", "No POP User", { mailboxProtocols: { pop: false } }),
    // adatum.com is federated to the emulator's AD FS: these users sign in through WS-Trust.
    adatum("ops", "Adatum Operations"),
    adatum("saml2", "Adatum SAML 2.0 User", { samlVersion: "2.0" }),
    adatum("adlocked", "Adatum Locked User", { locked: true }),
    adatum("adexpired", "Adatum Expired Password User", { passwordExpired: true }),
  ];
  return {
    tokenLifetimeSeconds: 3600,
    tenants: [
      {
        id: DEMO_TENANT_ID,
        domains: ["contoso.com", "contoso.onmicrosoft.com", "adatum.com"],
        federatedDomains: [{ domain: "adatum.com", samlVersion: "1.1" }],
        smtpAuthEnabled: true,
        apps: [
          {
            clientId: DEMO_CLIENT_ID,
            displayName: "m365-mail demo",
            publicClient: true,
            assignmentRequired: true,
            assignedUsers: users.filter((u) => u.upn !== "unassigned@contoso.com").map((u) => u.upn),
            grantedPermissions: { graph: [...GRAPH_PERMISSIONS], outlook: [...OUTLOOK_PERMISSIONS] },
          },
        ],
        users,
      },
    ],
  };
}

function demoEvents(now: Date): DirectoryEvent[] {
  const hour = new Date(now);
  hour.setUTCMinutes(0, 0, 0);
  const at = (hoursFromNow: number, minutes: number) => {
    const start = new Date(hour.getTime() + hoursFromNow * 3_600_000);
    return { start: start.toISOString(), end: new Date(start.getTime() + minutes * 60_000).toISOString() };
  };
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 3));
  return [
    { id: "evt-standup-yesterday", subject: "Support stand-up", ...at(-24, 15), location: "Teams" },
    {
      id: "evt-fabrikam-call",
      subject: "Customer call: Fabrikam escalation",
      ...at(2, 60),
      location: "Microsoft Teams Meeting",
      attendees: ["alice@contoso.com"],
      body: "Walk through the open tickets with Fabrikam.",
    },
    {
      id: "evt-queue-review",
      subject: "Ticket queue review",
      ...at(26, 30),
      attendees: ["alice@contoso.com"],
    },
    {
      id: "evt-offsite",
      subject: "Team offsite",
      start: day.toISOString(),
      end: new Date(day.getTime() + 86_400_000).toISOString(),
      isAllDay: true,
      location: "Redmond",
    },
    { id: "evt-rota-handover", subject: "Support rota handover", ...at(24 * 7, 30) },
  ];
}

/** Reads and validates a directory JSON file (the format of `Directory`). */
export async function loadDirectory(path: string): Promise<Directory> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `cannot read the directory file ${path}`, {
      source: "emulator",
      cause: error,
      hint: "Check the path given to --directory (or startEmulator({ directory })).",
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new M365MailError("CONFIG_INVALID", `the directory file ${path} is not valid JSON`, {
      source: "emulator",
      cause: error,
      hint: "Fix the JSON syntax; `m365-emulator --print-directory` shows a valid example.",
    });
  }
  return validateDirectory(parsed, path);
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks the shape of a directory and returns it; every problem names the field, e.g. `tenants[0].users[2].upn`. */
export function validateDirectory(value: unknown, origin = "directory"): Directory {
  const problems: string[] = [];
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const optionalBoolean = (obj: Record<string, unknown>, key: string, at: string) => {
    if (obj[key] !== undefined && typeof obj[key] !== "boolean")
      problems.push(`${at}.${key} must be true or false`);
  };
  const stringList = (v: unknown, at: string, optional: boolean) => {
    if (v === undefined && optional) return;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
      problems.push(`${at} must be an array of strings`);
  };

  if (!isObject(value)) {
    problems.push("the top level must be an object with a `tenants` array");
  } else {
    if (
      value.tokenLifetimeSeconds !== undefined &&
      (typeof value.tokenLifetimeSeconds !== "number" || value.tokenLifetimeSeconds <= 0)
    ) {
      problems.push("tokenLifetimeSeconds must be a positive number");
    }
    if (!Array.isArray(value.tenants) || value.tenants.length === 0) {
      problems.push("tenants must be a non-empty array");
    } else {
      const seenUpns = new Set<string>();
      value.tenants.forEach((tenant: unknown, t: number) => {
        const at = `tenants[${t}]`;
        if (!isObject(tenant)) {
          problems.push(`${at} must be an object`);
          return;
        }
        if (typeof tenant.id !== "string" || !GUID.test(tenant.id)) problems.push(`${at}.id must be a GUID`);
        stringList(tenant.domains, `${at}.domains`, false);
        const domains = Array.isArray(tenant.domains)
          ? tenant.domains.map((d) => String(d).toLowerCase())
          : [];
        optionalBoolean(tenant, "securityDefaults", at);
        optionalBoolean(tenant, "smtpAuthEnabled", at);
        if (tenant.federatedDomains !== undefined) {
          if (!Array.isArray(tenant.federatedDomains))
            problems.push(`${at}.federatedDomains must be an array`);
          else
            tenant.federatedDomains.forEach((fed: unknown, f: number) => {
              const fedAt = `${at}.federatedDomains[${f}]`;
              if (!isObject(fed) || typeof fed.domain !== "string") {
                problems.push(`${fedAt} must be an object with a domain`);
                return;
              }
              if (!domains.includes(fed.domain.toLowerCase()))
                problems.push(`${fedAt}.domain ${fed.domain} is not one of the tenant's domains`);
              if (fed.samlVersion !== undefined && fed.samlVersion !== "1.1" && fed.samlVersion !== "2.0")
                problems.push(`${fedAt}.samlVersion must be "1.1" or "2.0"`);
            });
        }
        if (!Array.isArray(tenant.apps)) problems.push(`${at}.apps must be an array`);
        else
          tenant.apps.forEach((app: unknown, a: number) => {
            const appAt = `${at}.apps[${a}]`;
            if (!isObject(app)) {
              problems.push(`${appAt} must be an object`);
              return;
            }
            if (typeof app.clientId !== "string" || !GUID.test(app.clientId))
              problems.push(`${appAt}.clientId must be a GUID`);
            if (typeof app.displayName !== "string") problems.push(`${appAt}.displayName must be a string`);
            if (typeof app.publicClient !== "boolean")
              problems.push(`${appAt}.publicClient must be true or false`);
            optionalBoolean(app, "assignmentRequired", appAt);
            optionalBoolean(app, "allowCloudPasswordValidation", appAt);
            stringList(app.assignedUsers, `${appAt}.assignedUsers`, true);
            if (!isObject(app.grantedPermissions))
              problems.push(`${appAt}.grantedPermissions must be an object`);
            else {
              stringList(app.grantedPermissions.graph, `${appAt}.grantedPermissions.graph`, true);
              stringList(app.grantedPermissions.outlook, `${appAt}.grantedPermissions.outlook`, true);
            }
          });
        if (!Array.isArray(tenant.users)) problems.push(`${at}.users must be an array`);
        else
          tenant.users.forEach((user: unknown, u: number) => {
            const userAt = `${at}.users[${u}]`;
            if (!isObject(user)) {
              problems.push(`${userAt} must be an object`);
              return;
            }
            if (typeof user.upn !== "string" || !/^[^@\s]+@[^@\s]+$/.test(user.upn)) {
              problems.push(`${userAt}.upn must be an address like name@contoso.com`);
            } else {
              const upn = user.upn.toLowerCase();
              if (seenUpns.has(upn)) problems.push(`${userAt}.upn ${user.upn} appears twice`);
              seenUpns.add(upn);
              const domain = upn.split("@")[1]!;
              if (domains.length > 0 && !domains.includes(domain)) {
                problems.push(
                  `${userAt}.upn ${user.upn} is not on a domain of the tenant (${domains.join(", ")})`,
                );
              }
            }
            if (typeof user.displayName !== "string") problems.push(`${userAt}.displayName must be a string`);
            if (typeof user.password !== "string") problems.push(`${userAt}.password must be a string`);
            if (user.id !== undefined && (typeof user.id !== "string" || !GUID.test(user.id))) {
              problems.push(`${userAt}.id must be a GUID when given`);
            }
            for (const key of ["mfa", "locked", "disabled", "passwordExpired", "federated", "shared"]) {
              optionalBoolean(user, key, userAt);
            }
            stringList(user.delegates, `${userAt}.delegates`, true);
            if (user.samlVersion !== undefined && user.samlVersion !== "1.1" && user.samlVersion !== "2.0")
              problems.push(`${userAt}.samlVersion must be "1.1" or "2.0"`);
            if (user.mailboxProtocols !== undefined) {
              if (!isObject(user.mailboxProtocols))
                problems.push(`${userAt}.mailboxProtocols must be an object`);
              else
                for (const key of ["imap", "pop", "smtpAuth"])
                  optionalBoolean(user.mailboxProtocols, key, `${userAt}.mailboxProtocols`);
            }
            if (user.events !== undefined) {
              if (!Array.isArray(user.events)) problems.push(`${userAt}.events must be an array`);
              else
                user.events.forEach((event: unknown, e: number) => {
                  const eventAt = `${userAt}.events[${e}]`;
                  if (!isObject(event)) {
                    problems.push(`${eventAt} must be an object`);
                    return;
                  }
                  if (typeof event.subject !== "string") problems.push(`${eventAt}.subject must be a string`);
                  for (const key of ["start", "end"]) {
                    if (typeof event[key] !== "string" || Number.isNaN(Date.parse(event[key] as string))) {
                      problems.push(`${eventAt}.${key} must be an ISO 8601 date-time`);
                    }
                  }
                });
            }
          });
      });
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join("; ");
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : "";
    throw new M365MailError(
      "CONFIG_INVALID",
      `${origin} is not a valid emulator directory: ${shown}${more}`,
      {
        source: "emulator",
        hint: "Fix the fields named above; the Directory type in @m365-mail/emulator documents each one.",
      },
    );
  }
  return value as unknown as Directory;
}
