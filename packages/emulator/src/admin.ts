import type { IncomingMessage, ServerResponse } from "node:http";
import { M365MailError } from "@m365-mail/core";
import type { AdfsService, AdfsSettings } from "./adfs/adfs-service.js";
import type { FaultSpec, Protocol, RequestCounters } from "./context.js";
import type { Directory, DirectoryApp, DirectoryUser } from "./directory.js";
import {
  type AppPatch,
  type DirectoryStore,
  publicDirectory,
  type TenantPatch,
  type UserPatch,
} from "./directory-store.js";
import type { DeviceCodeSettings, DeviceCodeStore, DeviceCodeSummary } from "./entra/device-codes.js";
import type { LoopDetectionOptions, LoopDetector } from "./entra/loop-detector.js";
import type { Denial, ProtocolGate } from "./entra/protocol-gate.js";
import type { SmartLockout, SmartLockoutOptions, SmartLockoutState } from "./entra/smart-lockout.js";
import type { TokenService } from "./entra/tokens.js";
import type { ArmedFault, createFaultRegistry } from "./faults.js";
import type { EmulatorPart } from "./part.js";

/** What tests and the CLI may change while the emulator runs; also served as JSON under `/_admin/`. */
export interface EmulatorAdmin {
  /** Arms a fault for the next matching request(s). */
  armFault(fault: FaultSpec): void;
  clearFaults(): void;
  /** Faults still armed, with how many requests each will still hit. */
  faults(): ArmedFault[];
  /** Request counters, e.g. `entra.token.password:support@contoso.com`. */
  counts(): Record<string, number>;
  resetCounts(): void;
  /** Revokes the user's refresh tokens; their access tokens fail verification with "revoked" from now on. */
  revokeTokens(upn: string): { revokedRefreshTokens: number };
  /** Makes the user's refresh tokens idle-expired (AADSTS700082 on next use). */
  expireRefreshTokens(upn: string): { expiredRefreshTokens: number };
  /** Changes a user (MFA, locked, mailboxProtocols, password, …); applies to the next request. */
  updateUser(upn: string, patch: UserPatch): DirectoryUser;
  /** Changes an app registration (publicClient, assignedUsers, grantedPermissions, …). */
  updateApp(clientId: string, patch: AppPatch): DirectoryApp;
  /** Tenant switches: `securityDefaults` (MFA for all, SMTP AUTH off), `smtpAuthEnabled`. Returns the tenant's settings. */
  updateTenant(
    idOrDomain: string,
    patch: TenantPatch,
  ): { id: string; securityDefaults: boolean; smtpAuthEnabled: boolean };
  /** Lifetime of access tokens issued from now on. */
  setTokenLifetime(seconds: number): void;
  /** Threshold of AADSTS50196 (client request loop). */
  setLoopDetection(options: LoopDetectionOptions): Required<LoopDetectionOptions>;
  /** Entra's smart lockout: failures before AADSTS50053 and how long it lasts. */
  setSmartLockout(options: SmartLockoutOptions): Required<SmartLockoutOptions>;
  /** A user's smart-lockout state: failures counted now, and the end of a lockout in progress. */
  smartLockoutState(upn: string): SmartLockoutState;
  /** The directory as the emulator sees it now, passwords removed. */
  directory(): Directory;
  /** Recent refusals of IMAP/POP3/SMTP/Graph token checks, with the reason, newest last. */
  lastDenials(): Record<Protocol, Denial[]>;
  /** The emulated AD FS's switches (WS-Trust 1.3 / 2005 endpoints, MEX, reachable, assertion lifetime). */
  adfsSettings(): AdfsSettings;
  /** Changes them, e.g. `updateAdfsSettings({ wsTrust13: false })` leaves only the 2005 endpoint. */
  updateAdfsSettings(patch: Partial<AdfsSettings>): AdfsSettings;
  /** Runtime settings of a started part, e.g. `partSettings("smtp")` → `{ limits: {...} }`. */
  partSettings(name: string): Record<string, unknown>;
  /** Changes them, e.g. `updatePartSettings("smtp", { messagesPerWindow: 0 })` lifts SMTP's rate limit. */
  updatePartSettings(name: string, patch: Record<string, unknown>): Record<string, unknown>;
  /** Device codes issued and not yet forgotten, with their state (never the device code itself). */
  deviceCodes(): DeviceCodeSummary[];
  /** A person signs in as `upn` at the verification page and allows the code (the sign-in counts as MFA). */
  approveDeviceCode(userCode: string, upn: string): DeviceCodeSummary;
  /** A person declines the code: the client's next poll gets `authorization_declined`. */
  denyDeviceCode(userCode: string): DeviceCodeSummary;
  /** Lifetime and polling interval of device codes issued from now on. */
  updateDeviceCodeSettings(patch: Partial<DeviceCodeSettings>): DeviceCodeSettings;
}

export interface AdminDeps {
  store: DirectoryStore;
  tokens: TokenService;
  faults: ReturnType<typeof createFaultRegistry>;
  counters: RequestCounters;
  loops: LoopDetector;
  lockout?: SmartLockout;
  gate: ProtocolGate;
  onRevoke: (upn: string) => void;
  adfs?: AdfsService;
  deviceCodes: DeviceCodeStore;
  /** Started parts by name (filled as they start). */
  parts?: ReadonlyMap<string, EmulatorPart>;
}

function withoutPassword<T extends { password?: string }>(value: T): T {
  return { ...value, password: "[REDACTED]" };
}

export function createAdmin(deps: AdminDeps): EmulatorAdmin {
  const requireUser = (upn: string) => {
    if (!deps.store.findUser(upn)) {
      throw new M365MailError("NOT_FOUND", `no user ${upn} in the emulator's directory`, {
        source: "emulator",
        hint: "Use a UPN listed by GET /_admin/directory.",
      });
    }
  };
  return {
    armFault: (fault) => deps.faults.arm(fault),
    clearFaults: () => deps.faults.clear(),
    faults: () => deps.faults.list(),
    counts: () => deps.counters.snapshot(),
    resetCounts: () => deps.counters.reset(),
    revokeTokens(upn) {
      requireUser(upn);
      const revokedRefreshTokens = deps.tokens.revoke(upn);
      deps.onRevoke(upn);
      return { revokedRefreshTokens };
    },
    expireRefreshTokens(upn) {
      requireUser(upn);
      return { expiredRefreshTokens: deps.tokens.expireRefreshTokens(upn) };
    },
    updateUser: (upn, patch) => withoutPassword(deps.store.updateUser(upn, patch)),
    updateApp: (clientId, patch) => deps.store.updateApp(clientId, patch),
    updateTenant(idOrDomain, patch) {
      const tenant = deps.store.updateTenant(idOrDomain, patch);
      return {
        id: tenant.id,
        securityDefaults: tenant.securityDefaults ?? false,
        smtpAuthEnabled: tenant.smtpAuthEnabled ?? true,
      };
    },
    setTokenLifetime: (seconds) => deps.store.setTokenLifetimeSeconds(seconds),
    setLoopDetection(options) {
      deps.loops.configure(options);
      return deps.loops.settings();
    },
    setSmartLockout(options) {
      if (!deps.lockout)
        throw new M365MailError("NOT_SUPPORTED", "smart lockout is not running", { source: "emulator" });
      deps.lockout.configure(options);
      return deps.lockout.settings();
    },
    smartLockoutState: (upn) => deps.lockout?.state(upn) ?? { failures: 0 },
    directory: () => publicDirectory(deps.store.get()),
    lastDenials: () => deps.gate.lastDenials(),
    adfsSettings() {
      return { ...requireAdfs().settings };
    },
    updateAdfsSettings: (patch) => requireAdfs().updateSettings(patch),
    deviceCodes: () => deps.deviceCodes.list(),
    approveDeviceCode(userCode, upn) {
      requireUser(upn);
      const record = deps.deviceCodes.approve(userCode, deps.store.findUser(upn)!.user.upn);
      return deps.deviceCodes.list().find((c) => c.userCode === record.userCode)!;
    },
    denyDeviceCode(userCode) {
      const record = deps.deviceCodes.deny(userCode);
      return deps.deviceCodes.list().find((c) => c.userCode === record.userCode)!;
    },
    updateDeviceCodeSettings: (patch) => deps.deviceCodes.updateSettings(patch),
    partSettings: (name) => requirePart(name, "settings").settings!(),
    updatePartSettings: (name, patch) => requirePart(name, "updateSettings").updateSettings!(patch),
  };
  function requireAdfs(): AdfsService {
    if (!deps.adfs) {
      throw new M365MailError("NOT_FOUND", "this emulator runs no AD FS", { source: "emulator" });
    }
    return deps.adfs;
  }
  function requirePart(name: string, method: "settings" | "updateSettings"): EmulatorPart {
    const part = deps.parts?.get(name);
    if (!part || typeof part[method] !== "function") {
      throw new M365MailError("NOT_FOUND", `no running emulator part "${name}" with settings`, {
        source: "emulator",
        hint: `Start the emulator with that part; parts with settings: ${
          [...(deps.parts?.values() ?? [])]
            .filter((p) => p.settings)
            .map((p) => p.name)
            .join(", ") || "none"
        }.`,
      });
    }
    return part;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

/**
 * `/_admin/…` over HTTP: the same operations as `EmulatorAdmin`, JSON in and out, loopback only.
 * Returns false when the path is not an admin route.
 */
export async function handleAdminRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  admin: EmulatorAdmin,
  readBody: () => Promise<string>,
): Promise<void> {
  const send = (status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  if (!LOOPBACK.has(req.socket.remoteAddress ?? "")) {
    send(403, {
      error: { code: "forbidden", message: "the admin API answers on the loopback interface only" },
    });
    return;
  }
  const json = async (): Promise<Record<string, unknown>> => {
    const text = await readBody();
    if (text.trim() === "") return {};
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === "object") return value as Record<string, unknown>;
    } catch (error) {
      throw new M365MailError("CONFIG_INVALID", "the request body is not valid JSON", {
        source: "emulator",
        cause: error,
      });
    }
    throw new M365MailError("CONFIG_INVALID", "the request body must be a JSON object", {
      source: "emulator",
    });
  };
  const path = url.pathname.replace(/\/+$/, "");
  const method = req.method ?? "GET";
  const segment = (prefix: string) => decodeURIComponent(path.slice(prefix.length));
  try {
    if (path === "/_admin/faults" && method === "POST") {
      const body = await json();
      const list = Array.isArray(body) ? body : Array.isArray(body.faults) ? body.faults : [body];
      for (const fault of list) admin.armFault(fault as FaultSpec);
      return send(201, { armed: admin.faults() });
    }
    if (path === "/_admin/faults" && method === "DELETE") {
      admin.clearFaults();
      return send(204);
    }
    if (path === "/_admin/faults" && method === "GET") return send(200, { armed: admin.faults() });
    if (path === "/_admin/counts" && method === "GET") return send(200, admin.counts());
    if (path === "/_admin/counts/reset" && method === "POST") {
      admin.resetCounts();
      return send(204);
    }
    if (path === "/_admin/tokens/revoke" && method === "POST") {
      const { upn } = await json();
      return send(200, admin.revokeTokens(requireString(upn, "upn")));
    }
    if (path === "/_admin/tokens/expire-refresh" && method === "POST") {
      const { upn } = await json();
      return send(200, admin.expireRefreshTokens(requireString(upn, "upn")));
    }
    if (path.startsWith("/_admin/users/") && method === "PATCH") {
      return send(200, admin.updateUser(segment("/_admin/users/"), (await json()) as UserPatch));
    }
    if (path.startsWith("/_admin/apps/") && method === "PATCH") {
      return send(200, admin.updateApp(segment("/_admin/apps/"), (await json()) as AppPatch));
    }
    if (path.startsWith("/_admin/tenants/") && method === "PATCH") {
      return send(200, admin.updateTenant(segment("/_admin/tenants/"), (await json()) as TenantPatch));
    }
    if (path === "/_admin/token-lifetime" && method === "POST") {
      const { seconds } = await json();
      admin.setTokenLifetime(Number(seconds));
      return send(200, { seconds: Number(seconds) });
    }
    if (path === "/_admin/loop-detection" && method === "POST") {
      return send(200, admin.setLoopDetection((await json()) as LoopDetectionOptions));
    }
    if (path === "/_admin/smart-lockout" && method === "POST") {
      return send(200, admin.setSmartLockout((await json()) as SmartLockoutOptions));
    }
    if (path.startsWith("/_admin/smart-lockout/") && method === "GET") {
      return send(200, admin.smartLockoutState(segment("/_admin/smart-lockout/")));
    }
    if (path === "/_admin/directory" && method === "GET") return send(200, admin.directory());
    if (path === "/_admin/device-codes" && method === "GET")
      return send(200, { deviceCodes: admin.deviceCodes() });
    if (path === "/_admin/device-codes/settings" && method === "POST") {
      return send(200, admin.updateDeviceCodeSettings((await json()) as Partial<DeviceCodeSettings>));
    }
    const deviceCodeAction = /^\/_admin\/device-codes\/([^/]+)\/(approve|deny)$/.exec(path);
    if (deviceCodeAction && method === "POST") {
      const userCode = decodeURIComponent(deviceCodeAction[1]!);
      if (deviceCodeAction[2] === "deny") return send(200, admin.denyDeviceCode(userCode));
      const { upn } = await json();
      return send(200, admin.approveDeviceCode(userCode, requireString(upn, "upn")));
    }
    if (path === "/_admin/last-denials" && method === "GET") return send(200, admin.lastDenials());
    if (path === "/_admin/adfs" && method === "GET") return send(200, admin.adfsSettings());
    if (path === "/_admin/adfs" && method === "PATCH") {
      return send(200, admin.updateAdfsSettings((await json()) as Partial<AdfsSettings>));
    }
    // The Graph part's throttling limits under the name the docs use (same as /_admin/parts/graph).
    if (path === "/_admin/graph/limits" && method === "GET") return send(200, admin.partSettings("graph"));
    if (path === "/_admin/graph/limits" && method === "POST") {
      return send(200, admin.updatePartSettings("graph", await json()));
    }
    if (path.startsWith("/_admin/parts/") && method === "GET")
      return send(200, admin.partSettings(segment("/_admin/parts/")));
    if (path.startsWith("/_admin/parts/") && method === "PATCH") {
      return send(200, admin.updatePartSettings(segment("/_admin/parts/"), await json()));
    }
    return send(404, { error: { code: "not_found", message: `no admin route ${method} ${path}` } });
  } catch (error) {
    if (error instanceof M365MailError) {
      const status = error.code === "NOT_FOUND" ? 404 : 400;
      return send(status, { error: { code: error.code, message: error.message, hint: error.hint } });
    }
    throw error;
  }
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") {
    throw new M365MailError("CONFIG_INVALID", `the request body needs "${name}"`, {
      source: "emulator",
      hint: `Send { "${name}": "support@contoso.com" }.`,
    });
  }
  return value;
}
