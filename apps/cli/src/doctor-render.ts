import type { ResolvedConfig } from "./config.js";
import { type CheckStatus, type DoctorCheck, type DoctorReport, SAML_NAMES } from "./doctor-checks.js";
import type { Output } from "./output.js";
import { tokenLines } from "./token-info.js";

// How doctor's report reads in a terminal; the checks themselves live in doctor-checks.ts.

const SYMBOL: Record<CheckStatus, string> = { pass: "✓", fail: "✗", skip: "–" };

export function checkLine(check: DoctorCheck, out: Output, number: number): string[] {
  const p = out.paint;
  const symbol =
    check.status === "pass"
      ? p.ok(SYMBOL.pass)
      : check.status === "fail"
        ? p.fail(SYMBOL.fail)
        : p.dim(SYMBOL.skip);
  const head = `${symbol} ${number}. ${check.capability.padEnd(38)} ${check.permission.padEnd(22)} ${check.via.padEnd(5)}`;
  const detail = check.blockedBy || check.status === "skip" ? p.dim(check.checked) : check.checked;
  const lines = [`  ${head} ${detail}`];
  if (check.status === "fail" && check.error && !check.blockedBy) {
    const message = String(check.error.message ?? "");
    const hint = typeof check.error.hint === "string" ? check.error.hint : undefined;
    const short = hint && message.endsWith(` — ${hint}`) ? message.slice(0, -` — ${hint}`.length) : message;
    lines.push(`       ${p.dim(`${check.error.code}: ${short}`)}`);
  }
  if (check.fix) lines.push(`       ${p.bold("fix:")} ${check.fix}`);
  return lines;
}

export function printDoctorHeader(config: ResolvedConfig, user: string, out: Output): void {
  const p = out.paint;
  out.out(`${p.bold("m365-mail doctor")} — ${user}`);
  const origin = (key: "tenantId" | "clientId") =>
    config.origins[key] ? p.dim(` (${config.origins[key]})`) : "";
  out.out(`  tenant  ${config.tenantId}${origin("tenantId")}`);
  out.out(`  client  ${config.clientId}${origin("clientId")}`);
  out.out(
    `  cloud   ${config.cloud.name} · Entra ID ${config.cloud.authorityHost} · Graph ${config.cloud.graphOrigin ?? config.cloud.graphEndpoint}`,
  );
  if (config.profile) out.out(`  profile ${config.profile} (${config.configPath})`);
  out.out();
}

export function printDoctorReport(report: DoctorReport, out: Output): void {
  const p = out.paint;
  const route = report.signIn;
  if (route?.realm) {
    const adfs =
      route.method === "saml-bearer"
        ? ` · AD FS ${route.adfsEndpoint} (WS-Trust ${route.wsTrustVersion}, ${SAML_NAMES[route.grantType ?? ""] ?? "SAML"})`
        : route.fallbackReason
          ? ` · ${route.fallbackReason}: password grant at Entra ID`
          : "";
    out.out(`${p.bold("Sign-in")}  realm ${route.realm}${route.domain ? ` (${route.domain})` : ""}${adfs}`);
    out.out();
  }
  out.out(p.bold("Tokens (decoded claims; the tokens themselves are never shown)"));
  for (const resource of ["graph", "outlook"] as const) {
    const info = report.tokens[resource];
    if (info) for (const line of tokenLines(info, p)) out.out(line);
    else out.out(`  ${p.bold(resource.padEnd(8))} ${p.fail("none")} (sign-in failed, see below)`);
  }
  out.out();
  out.out(p.bold("Capabilities (the set-up guide's permission table)"));
  report.checks.forEach((check, i) => {
    for (const line of checkLine(check, out, i + 1)) out.out(line);
  });
  out.out();
  const failedCount = report.checks.filter((c) => c.status === "fail").length;
  const passed = report.checks.filter((c) => c.status === "pass").length;
  const skipped = report.checks.filter((c) => c.status === "skip").length;
  const skippedText = skipped ? `, ${skipped} skipped` : "";
  out.out(
    failedCount === 0
      ? p.ok(`All ${passed} checks passed${skippedText}.`)
      : p.fail(
          `${failedCount} of ${report.checks.length - skipped} checks failed${skippedText}: change the settings after "fix:" and run doctor again.`,
        ),
  );
}
