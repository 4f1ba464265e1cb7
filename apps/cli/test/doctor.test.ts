import type { Directory } from "@m365-mail/emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  expectNoSecrets,
  HAS_DOVECOT,
  parseJson,
  runCli,
  startTestEmulator,
  type TestEmulator,
} from "./helpers.js";

interface Check {
  id: string;
  status: "pass" | "fail" | "skip";
  checked: string;
  fix?: string;
  blockedBy?: string;
  error?: { code: string; hint?: string };
}
interface Report {
  ok: boolean;
  user: string;
  tokens: {
    graph?: { audience: string; scopes: string[]; expiresAt: string };
    outlook?: { audience: string; scopes: string[] };
  };
  checks: Check[];
}

async function doctor(
  emu: TestEmulator,
  user: string,
  extra: string[] = [],
): Promise<{ result: CliResult; report: Report }> {
  const result = await runCli(["doctor", "--json", ...extra], { env: emu.env(user), cwd: emu.home });
  expectNoSecrets(result);
  return { result, report: parseJson<Report>(result) };
}

const check = (report: Report, id: string): Check => {
  const found = report.checks.find((c) => c.id === id);
  if (!found) throw new Error(`no check ${id} in ${JSON.stringify(report.checks.map((c) => c.id))}`);
  return found;
};

const app = (directory: Directory) => directory.tenants[0]!.apps[0]!;

describe("doctor against the demo directory", () => {
  let emu: TestEmulator;
  beforeAll(async () => {
    emu = await startTestEmulator();
  });
  afterAll(async () => {
    await emu?.stop();
  });

  it("passes every row of the permission table for a correctly set-up user, and shows the claims", async () => {
    const { result, report } = await doctor(emu, "support@contoso.com", HAS_DOVECOT ? ["--pop3"] : []);
    const expected = HAS_DOVECOT
      ? ["sign-in", "calendar", "mail-read", "mail-send", "smtp", "imap", "pop3"]
      : ["sign-in", "calendar", "mail-read", "mail-send", "smtp"];
    for (const id of expected) expect(check(report, id).status, id).toBe("pass");
    expect(result.code).toBe(HAS_DOVECOT ? 0 : 1);
    expect(report.tokens.graph?.audience).toBe("https://graph.microsoft.com");
    expect(report.tokens.graph?.scopes).toContain("Calendars.Read");
    expect(report.tokens.outlook?.audience).toMatch(/outlook/);
    expect(report.tokens.outlook?.scopes).toContain("SMTP.Send");
    expect(Date.parse(report.tokens.graph!.expiresAt)).toBeGreaterThan(Date.now());
  });

  it("a federated (AD FS) user: shows the realm and the AD FS endpoint, and every check passes", async () => {
    const user = "ops@adatum.com";
    const endpoint = `${emu.emulator.adfsOrigin}/adfs/services/trust/13/usernamemixed`;
    const { result, report } = await doctor(emu, user, HAS_DOVECOT ? ["--pop3"] : []);
    const expected = HAS_DOVECOT
      ? ["sign-in", "calendar", "mail-read", "mail-send", "smtp", "imap", "pop3"]
      : ["sign-in", "calendar", "mail-read", "mail-send", "smtp"];
    for (const id of expected) expect(check(report, id).status, id).toBe("pass");
    expect(result.code).toBe(HAS_DOVECOT ? 0 : 1);
    expect((report as Report & { signIn?: unknown }).signIn).toMatchObject({
      realm: "Federated",
      domain: "adatum.com",
      method: "saml-bearer",
      adfsEndpoint: endpoint,
      wsTrustVersion: "1.3",
    });
    expect(check(report, "sign-in").checked).toContain(`WS-Trust 1.3 at AD FS ${endpoint}`);
    // The password went to AD FS, never to Entra ID.
    expect(emu.emulator.admin.counts()[`entra.token.password:${user}`]).toBeUndefined();

    const text = await runCli(["doctor", ...(HAS_DOVECOT ? ["--pop3"] : [])], {
      env: { ...emu.env(user), NO_COLOR: "1" },
      cwd: emu.home,
    });
    expectNoSecrets(text);
    expect(text.stdout).toContain(
      `realm Federated (adatum.com) · AD FS ${endpoint} (WS-Trust 1.3, SAML 1.1)`,
    );
    expect(text.stdout.match(/✓ \d\./g)?.length).toBe(expected.length);
    if (HAS_DOVECOT) expect(text.stdout).toContain(`All ${expected.length} checks passed`);
  });

  it("a federated user locked out in AD: sign-in ✗ at the AD FS endpoint, the fix names AD FS", async () => {
    const { result, report } = await doctor(emu, "adlocked@adatum.com");
    expect(result.code).toBe(1);
    const signIn = check(report, "sign-in");
    expect(signIn.error?.code).toBe("ACCOUNT_LOCKED");
    expect(signIn.checked).toContain(
      `WS-Trust 1.3 at AD FS ${emu.emulator.adfsOrigin}/adfs/services/trust/13/usernamemixed`,
    );
    expect(signIn.fix).toMatch(/^AD FS \(/);
    expect(signIn.fix).toContain("locked out");
    expect(emu.emulator.admin.counts()["entra.token.password:adlocked@adatum.com"]).toBeUndefined();
  });

  it("sends mail only with --send-test, then one message over Graph and one over SMTP", async () => {
    const count = async () => {
      const listed = await runCli(["list", "--json", "-n", "50"], {
        env: emu.env("alice@contoso.com"),
        cwd: emu.home,
      });
      return parseJson(listed).messages.filter((m: { subject: string }) =>
        m.subject.startsWith("m365-mail doctor: test message"),
      ).length as number;
    };
    await doctor(emu, "support@contoso.com");
    expect(await count()).toBe(0);
    const { report } = await doctor(emu, "support@contoso.com", ["--send-test", "alice@contoso.com"]);
    expect(check(report, "mail-send")).toMatchObject({
      status: "pass",
      checked: expect.stringContaining("sent a test message to alice@contoso.com"),
    });
    expect(check(report, "smtp")).toMatchObject({
      status: "pass",
      checked: expect.stringContaining("sent a test message to alice@contoso.com"),
    });
    let arrived = 0;
    for (let i = 0; i < 40 && arrived < 2; i++) {
      arrived = await count();
      if (arrived < 2) await new Promise((r) => setTimeout(r, 250));
    }
    expect(arrived).toBe(2);
  });

  it("checks POP3 only when asked", async () => {
    const { report } = await doctor(emu, "support@contoso.com");
    expect(check(report, "pop3")).toMatchObject({
      status: "skip",
      checked: expect.stringContaining("--pop3"),
    });
  });

  it("MFA on: sign-in ✗ with the MFA exclusion, the other rows not tried with the password again", async () => {
    const before = emu.emulator.admin.counts()["entra.token.password:mfa@contoso.com"] ?? 0;
    const { result, report } = await doctor(emu, "mfa@contoso.com");
    expect(result.code).toBe(1);
    const signIn = check(report, "sign-in");
    expect(signIn.status).toBe("fail");
    expect(signIn.error?.code).toBe("MFA_REQUIRED");
    expect(signIn.fix).toMatch(/MFA/);
    expect(signIn.fix).toContain("mfa@contoso.com");
    for (const id of ["calendar", "mail-read", "mail-send", "smtp", "imap"]) {
      expect(check(report, id)).toMatchObject({ status: "fail", blockedBy: "sign-in" });
    }
    // One refused password grant, not one per row (an account must not be locked out by doctor).
    expect((emu.emulator.admin.counts()["entra.token.password:mfa@contoso.com"] ?? 0) - before).toBe(1);
  });

  it("user not assigned while assignment is required: sign-in ✗ naming Users and groups", async () => {
    const { report } = await doctor(emu, "unassigned@contoso.com");
    const signIn = check(report, "sign-in");
    expect(signIn.error?.code).toBe("USER_NOT_ASSIGNED");
    expect(signIn.fix).toContain("Enterprise application → Users and groups");
    expect(signIn.fix).toContain("unassigned@contoso.com");
    expect(signIn.fix).toContain("Assignment required");
  });

  it("SMTP AUTH off for the mailbox: only the SMTP row ✗, naming Manage email apps → Authenticated SMTP", async () => {
    const { result, report } = await doctor(emu, "nosmtp@contoso.com");
    expect(result.code).toBe(1);
    const smtp = check(report, "smtp");
    expect(smtp.status).toBe("fail");
    expect(smtp.error?.code).toBe("PROTOCOL_DISABLED");
    expect(smtp.fix).toContain("Manage email apps → Authenticated SMTP: on");
    expect(smtp.fix).toContain("SMTP AUTH");
    for (const id of ["sign-in", "calendar", "mail-read", "mail-send"])
      expect(check(report, id).status, id).toBe("pass");
  });

  it.skipIf(!HAS_DOVECOT)(
    "IMAP disabled for the mailbox: only the IMAP row ✗, naming Manage email apps → IMAP",
    async () => {
      const { report } = await doctor(emu, "noimap@contoso.com");
      const imap = check(report, "imap");
      expect(imap.status).toBe("fail");
      expect(imap.error?.code).toBe("PROTOCOL_DISABLED");
      expect(imap.fix).toBe(
        "Exchange admin center → Recipients → Mailboxes → noimap@contoso.com → Manage email apps → IMAP: on",
      );
      expect(check(report, "smtp").status).toBe("pass");
      expect(check(report, "sign-in").status).toBe("pass");
    },
  );

  it("prints one ✓/✗ line per capability with the fix under each ✗ when not --json", async () => {
    const result = await runCli(["doctor"], { env: emu.env("nosmtp@contoso.com"), cwd: emu.home });
    expectNoSecrets(result);
    expect(result.code).toBe(1);
    const lines = result.stdout.split("\n");
    expect(lines.find((l) => l.includes("Get an auth token via the ROPC flow"))).toMatch(/^\s+✓ 1\./);
    const smtpLine = lines.findIndex((l) => l.includes("Send mail via SMTP auth'ed w/XOAUTH2"));
    expect(lines[smtpLine]).toMatch(/^\s+✗ 5\./);
    expect(lines.slice(smtpLine + 1, smtpLine + 3).join("\n")).toContain(
      "fix: Exchange admin center → Recipients → Mailboxes → nosmtp@contoso.com → Manage email apps → Authenticated SMTP: on",
    );
    expect(result.stdout).toMatch(/scopes\s+.*SMTP\.Send/);
    // Piped output is plain text.
    expect(result.stdout).not.toMatch(/\x1b\[/);
  });
});

describe("doctor against directories with a broken app registration", () => {
  const cases: Array<{
    name: string;
    change: (d: Directory) => void;
    id: string;
    code: string;
    fix: RegExp;
    passing: string[];
  }> = [
    {
      name: "public client flows off",
      change: (d) => {
        app(d).publicClient = false;
      },
      id: "sign-in",
      code: "PUBLIC_CLIENT_DISABLED",
      fix: /^App registration → Authentication → Advanced settings → Allow public client flows .*: Yes$/,
      passing: [],
    },
    {
      name: "admin consent missing",
      change: (d) => {
        app(d).grantedPermissions = {};
      },
      id: "sign-in",
      code: "CONSENT_REQUIRED",
      fix: /App registration → API permissions → .*User\.Read, then ✓ Grant admin consent/,
      passing: [],
    },
    {
      name: "Calendars.Read not granted",
      change: (d) => {
        app(d).grantedPermissions.graph = (app(d).grantedPermissions.graph ?? []).filter(
          (p) => p !== "Calendars.Read",
        );
      },
      id: "calendar",
      code: "ACCESS_DENIED",
      fix: /App registration → API permissions → \+ Add a permission → Microsoft Graph → Delegated permissions → Calendars\.Read, then ✓ Grant admin consent/,
      passing: ["sign-in", "mail-read", "mail-send", "smtp"],
    },
  ];
  for (const c of cases) {
    it(`${c.name}: the ${c.id} row ✗ with the setting to change`, async () => {
      const emu = await startTestEmulator(c.change, { dovecot: c.passing.length > 0 });
      try {
        const { result, report } = await doctor(emu, "support@contoso.com");
        expect(result.code).toBe(1);
        const failed = check(report, c.id);
        expect(failed.status).toBe("fail");
        expect(failed.error?.code).toBe(c.code);
        expect(failed.fix).toMatch(c.fix);
        for (const id of c.passing) expect(check(report, id).status, id).toBe("pass");
        if (c.id === "sign-in") {
          for (const id of ["calendar", "mail-read", "mail-send"])
            expect(check(report, id).blockedBy).toBe("sign-in");
        }
      } finally {
        await emu.stop();
      }
    });
  }
});
