// Runs `m365-mail doctor` against a REAL Microsoft 365 tenant. Skipped unless these are set:
//   M365_LIVE_TENANT_ID, M365_LIVE_CLIENT_ID, M365_LIVE_USERNAME, M365_LIVE_PASSWORD
// Optional: M365_LIVE_CLOUD (global, usgovhigh, usdod, china), M365_LIVE_POP3=1, M365_LIVE_SEND_TO.
// It never prints the password or a token; it sends mail only when M365_LIVE_SEND_TO is set.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseEnv, runCli } from "./helpers.js";

const live = {
  tenantId: process.env.M365_LIVE_TENANT_ID,
  clientId: process.env.M365_LIVE_CLIENT_ID,
  username: process.env.M365_LIVE_USERNAME,
  password: process.env.M365_LIVE_PASSWORD,
};
const configured = Object.values(live).every(Boolean);

describe.skipIf(!configured)("live tenant: m365-mail doctor", { timeout: 120_000 }, () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "m365-live-"));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it("passes every check of the permission table, and prints no secret", async () => {
    const args = ["doctor", "--json"];
    if (process.env.M365_LIVE_POP3) args.push("--pop3");
    if (process.env.M365_LIVE_SEND_TO) args.push("--send-test", process.env.M365_LIVE_SEND_TO);
    const result = await runCli(args, {
      env: {
        ...baseEnv(home),
        M365_TENANT_ID: live.tenantId,
        M365_CLIENT_ID: live.clientId,
        M365_USERNAME: live.username,
        M365_PASSWORD: live.password,
        M365_CLOUD: process.env.M365_LIVE_CLOUD,
      },
      timeoutMs: 110_000,
    });
    const output = result.stdout + result.stderr;
    expect(output).not.toContain(live.password!);
    expect(output).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: { status: string; fix?: string }[] };
    const failed = report.checks.filter((c) => c.status === "fail");
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
  });
});
