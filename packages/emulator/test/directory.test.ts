import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isM365MailError } from "@m365-mail/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEMO_CLIENT_ID,
  DEMO_PASSWORD,
  DEMO_TENANT_ID,
  defaultDirectory,
  loadDirectory,
  validateDirectory,
} from "../src/index.js";
import { passwordGrant, postForm, startTestEmulator } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "m365-emulator-dir-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the demo directory", () => {
  it("has the demo tenant, app and one user per failure", () => {
    const directory = defaultDirectory(new Date("2026-03-10T10:20:00Z"));
    const tenant = directory.tenants[0]!;
    expect(tenant.id).toBe(DEMO_TENANT_ID);
    expect(tenant.apps[0]).toMatchObject({
      clientId: DEMO_CLIENT_ID,
      publicClient: true,
      assignmentRequired: true,
    });
    expect(tenant.users.map((u) => u.upn.split("@")[0])).toEqual(
      expect.arrayContaining([
        "support",
        "alice",
        "shared",
        "mfa",
        "locked",
        "disabled",
        "expired",
        "federated",
        "unassigned",
        "nosmtp",
        "noimap",
        "nopop",
      ]),
    );
    expect(tenant.apps[0]!.assignedUsers).not.toContain("unassigned@contoso.com");
  });

  it("places support@'s calendar events around the start time", () => {
    const now = new Date("2026-03-10T10:20:00Z");
    const events = defaultDirectory(now).tenants[0]!.users.find((u) => u.upn === "support@contoso.com")!
      .events!;
    expect(events.some((e) => Date.parse(e.start) < now.getTime())).toBe(true);
    expect(
      events.some(
        (e) => Date.parse(e.start) > now.getTime() && Date.parse(e.start) < now.getTime() + 86_400_000,
      ),
    ).toBe(true);
    expect(events.some((e) => e.isAllDay)).toBe(true);
  });
});

describe("loadDirectory", () => {
  it("loads a valid file and the emulator serves it", async () => {
    const path = join(dir, "custom.json");
    const directory = {
      tenants: [
        {
          id: "0a0b0c0d-1111-4222-8333-444455556666",
          domains: ["fabrikam.com"],
          securityDefaults: true,
          apps: [
            {
              clientId: "99999999-8888-4777-8666-555544443333",
              displayName: "app",
              publicClient: true,
              grantedPermissions: { graph: ["User.Read"] },
            },
          ],
          users: [{ upn: "ops@fabrikam.com", displayName: "Ops", password: "x-Pass-1" }],
        },
      ],
    };
    await writeFile(path, JSON.stringify(directory));
    expect((await loadDirectory(path)).tenants[0]!.domains).toEqual(["fabrikam.com"]);
    const { emulator, cleanup } = await startTestEmulator({ directory: path });
    try {
      expect(emulator.tenantId).toBe("0a0b0c0d-1111-4222-8333-444455556666");
      expect(emulator.clientId).toBe("99999999-8888-4777-8666-555544443333");
      // Security Defaults require MFA, which ROPC cannot do.
      const answer = await passwordGrant(emulator, {
        username: "ops@fabrikam.com",
        password: "x-Pass-1",
        scope: "User.Read",
      });
      expect(answer.json.error_codes).toEqual([50076]);
    } finally {
      await cleanup();
    }
  });

  it("names every invalid field", () => {
    const attempt = () =>
      validateDirectory({
        tenants: [
          {
            id: "not-a-guid",
            domains: ["contoso.com"],
            apps: [{ clientId: "x", displayName: "a", publicClient: "yes", grantedPermissions: {} }],
            users: [{ upn: "bob@elsewhere.com", displayName: "Bob", password: 1, mfa: "no" }],
          },
        ],
      });
    expect(attempt).toThrowError(/tenants\[0\]\.id must be a GUID/);
    expect(attempt).toThrowError(/tenants\[0\]\.apps\[0\]\.clientId must be a GUID/);
    expect(attempt).toThrowError(/tenants\[0\]\.apps\[0\]\.publicClient must be true or false/);
    expect(attempt).toThrowError(/bob@elsewhere\.com is not on a domain of the tenant/);
    expect(attempt).toThrowError(/users\[0\]\.password must be a string/);
    expect(attempt).toThrowError(/users\[0\]\.mfa must be true or false/);
  });

  it("reports a missing file and bad JSON as CONFIG_INVALID with a hint", async () => {
    const missing = await loadDirectory(join(dir, "nope.json")).catch((e: unknown) => e);
    expect(isM365MailError(missing, "CONFIG_INVALID")).toBe(true);
    expect((missing as Error).message).toContain("nope.json");
    const path = join(dir, "broken.json");
    await writeFile(path, "{ tenants: ");
    const broken = await loadDirectory(path).catch((e: unknown) => e);
    expect(isM365MailError(broken, "CONFIG_INVALID")).toBe(true);
    expect((broken as { hint: string }).hint).toMatch(/JSON/);
  });

  it("does not let admin changes leak into the caller's directory object", async () => {
    const directory = defaultDirectory();
    const { emulator, cleanup } = await startTestEmulator({ directory });
    try {
      emulator.admin.updateUser("support@contoso.com", { mfa: true });
      expect(directory.tenants[0]!.users[0]!.mfa).toBeUndefined();
      const answer = await postForm(emulator, `${emulator.authority}/oauth2/v2.0/token`, {
        grant_type: "password",
        client_id: emulator.clientId,
        username: "support@contoso.com",
        password: DEMO_PASSWORD,
        scope: "User.Read",
      });
      expect(answer.json.error_codes).toEqual([50076]);
    } finally {
      await cleanup();
    }
  });
});
