import { randomBytes, randomInt } from "node:crypto";
import { M365MailError } from "@m365-mail/core";

/** How long a device code lives and how often a client may poll; Microsoft's defaults are 900 s and 5 s. */
export interface DeviceCodeSettings {
  /** @default 900 */
  expiresInSeconds: number;
  /** @default 5 */
  intervalSeconds: number;
  /**
   * Poll spacing the emulator enforces with `slow_down` when stricter than the advertised interval
   * (a server under load). @default 0
   */
  enforcedIntervalSeconds: number;
}

export type DeviceCodeState = "pending" | "approved" | "denied" | "redeemed";

/** One device authorization request, from `/devicecode` until it is redeemed, denied or expires. */
export interface DeviceCodeRecord {
  /** The long secret the client polls with. */
  readonly deviceCode: string;
  /** The short code a person types at the verification page. */
  readonly userCode: string;
  /** The tenant the request named (`organizations`/`common` → any tenant's user may approve). */
  readonly tenantSegment: string;
  readonly clientId: string;
  readonly scope: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  state: DeviceCodeState;
  /** The seconds a client must leave between polls; raised by 5 after each slow_down (RFC 8628 §3.5). */
  interval: number;
  /** At least this many seconds between polls, whatever was advertised. */
  readonly enforcedInterval: number;
  lastPollAt: number | undefined;
  /** Who approved it. */
  upn: string | undefined;
}

/** What the admin API lists: never the device code itself (it is the client's secret). */
export interface DeviceCodeSummary {
  userCode: string;
  clientId: string;
  scope: string;
  state: DeviceCodeState | "expired";
  expiresAt: string;
  upn?: string;
}

// Microsoft's user codes are 8–9 letters and digits without look-alikes; the emulator uses 9.
const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const DEFAULTS: DeviceCodeSettings = {
  expiresInSeconds: 900,
  intervalSeconds: 5,
  enforcedIntervalSeconds: 0,
};

function notFound(userCode: string): M365MailError {
  return new M365MailError("NOT_FOUND", `no device code ${userCode} is waiting for approval`, {
    source: "emulator",
    hint: "Use the user code the client printed (GET /_admin/device-codes lists them); it may have expired or been used.",
  });
}

/** Pending device codes of the emulator's Entra ID, looked up by device code (token endpoint) or user code (page, admin). */
export class DeviceCodeStore {
  private readonly byDevice = new Map<string, DeviceCodeRecord>();
  private readonly byUser = new Map<string, DeviceCodeRecord>();
  private current: DeviceCodeSettings = { ...DEFAULTS };

  settings(): DeviceCodeSettings {
    return { ...this.current };
  }

  updateSettings(patch: Partial<DeviceCodeSettings>): DeviceCodeSettings {
    for (const [name, value] of Object.entries(patch)) {
      if (!(name in DEFAULTS) || typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        throw new M365MailError("CONFIG_INVALID", `device-code setting ${name} must be a number ≥ 0`, {
          source: "emulator",
          hint: 'Send { "expiresInSeconds": 900, "intervalSeconds": 5, "enforcedIntervalSeconds": 0 } (any may be left out).',
        });
      }
    }
    this.current = { ...this.current, ...patch };
    return this.settings();
  }

  create(tenantSegment: string, clientId: string, scope: string, now = Date.now()): DeviceCodeRecord {
    this.sweep(now);
    let userCode: string;
    do {
      userCode = Array.from({ length: 9 }, () => ALPHABET[randomInt(ALPHABET.length)]).join("");
    } while (this.byUser.has(userCode));
    const record: DeviceCodeRecord = {
      // Opaque and long, like Microsoft's ("DAQABAAEAAAD…").
      deviceCode: `DAQABIQEAAAD${randomBytes(96).toString("base64url")}`,
      userCode,
      tenantSegment,
      clientId,
      scope,
      createdAt: now,
      expiresAt: now + this.current.expiresInSeconds * 1000,
      state: "pending",
      interval: this.current.intervalSeconds,
      enforcedInterval: this.current.enforcedIntervalSeconds,
      lastPollAt: undefined,
      upn: undefined,
    };
    this.byDevice.set(record.deviceCode, record);
    this.byUser.set(userCode, record);
    return record;
  }

  findByDeviceCode(deviceCode: string): DeviceCodeRecord | undefined {
    return this.byDevice.get(deviceCode);
  }

  /** A code a person may still act on (pending, not expired); user codes are compared without case or dashes. */
  findPending(userCode: string, now = Date.now()): DeviceCodeRecord | undefined {
    const record = this.byUser.get(userCode.replace(/[\s-]/g, "").toUpperCase());
    return record && record.state === "pending" && now < record.expiresAt ? record : undefined;
  }

  approve(userCode: string, upn: string): DeviceCodeRecord {
    const record = this.findPending(userCode);
    if (!record) throw notFound(userCode);
    record.state = "approved";
    record.upn = upn;
    return record;
  }

  deny(userCode: string): DeviceCodeRecord {
    const record = this.findPending(userCode);
    if (!record) throw notFound(userCode);
    record.state = "denied";
    return record;
  }

  list(now = Date.now()): DeviceCodeSummary[] {
    this.sweep(now);
    return [...this.byUser.values()].map((r) => ({
      userCode: r.userCode,
      clientId: r.clientId,
      scope: r.scope,
      state: r.state === "pending" && now >= r.expiresAt ? "expired" : r.state,
      expiresAt: new Date(r.expiresAt).toISOString(),
      ...(r.upn ? { upn: r.upn } : {}),
    }));
  }

  /** Forgets codes expired for an hour, so a long-running emulator does not grow. */
  private sweep(now: number): void {
    for (const record of this.byDevice.values()) {
      if (now > record.expiresAt + 3_600_000) {
        this.byDevice.delete(record.deviceCode);
        this.byUser.delete(record.userCode);
      }
    }
  }
}
