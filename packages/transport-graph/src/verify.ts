import { M365MailError, readJwtClaims, type VerifyCheck, type VerifyReport } from "@m365-mail/core";
import type { GraphContext } from "./graph-context.js";
import { graphError, SOURCE } from "./graph-errors.js";
import { grantedScopes, isGraphAudience } from "./graph-hosts.js";
import { OPERATIONS } from "./operations.js";

const asError = (error: unknown): M365MailError =>
  error instanceof M365MailError
    ? error
    : new M365MailError("SERVER_ERROR", "unexpected failure", { source: SOURCE, cause: error });

/**
 * Real round trips, one per permission: sign-in (a Graph token), User.Read (`/me`), Mail.Read (the
 * Inbox), Calendars.Read (a one-day calendarView). Mail.Send cannot be tried without sending, so it
 * is read from the token's `scp` claim. `ok` is true when every check passed.
 */
export async function verify(ctx: GraphContext, signal?: AbortSignal): Promise<VerifyReport> {
  const checks: VerifyCheck[] = [];
  const shared = ctx.sharedMailbox !== undefined;
  const report = (): VerifyReport => ({ transport: ctx.name, ok: checks.every((c) => c.ok), checks });

  let scopes: string[] | undefined;
  try {
    const token = await ctx.auth.getAccessToken("graph", { signal });
    scopes = grantedScopes(token.token);
    const claims = readJwtClaims(token.token);
    const audience = claims?.aud;
    if (audience && !isGraphAudience(audience, ctx.graphResource)) {
      const error = graphError(401, undefined, {
        op: OPERATIONS.me,
        sharedMailbox: ctx.sharedMailbox,
        graphResource: ctx.graphResource,
        token: token.token,
      });
      checks.push({ name: "sign-in", ok: false, detail: `the token's audience is ${audience}`, error });
      return report();
    }
    checks.push({
      name: "sign-in",
      ok: true,
      detail: `Graph token for ${ctx.auth.username}${audience ? ` (aud ${audience})` : ""}; scopes: ${claims?.scp ?? "unknown"}`,
    });
  } catch (error) {
    checks.push({ name: "sign-in", ok: false, detail: 'getAccessToken("graph")', error: asError(error) });
    return report();
  }

  const mb = ctx.mailboxPath;
  const now = new Date();
  const tomorrow = new Date(now.getTime() + 86_400_000);
  const probes: Array<{ name: string; permission: string; detail: string; run: () => Promise<string> }> = [
    {
      name: "User.Read",
      permission: "User.Read",
      detail: "GET /me",
      run: async () => {
        const { data } = await ctx.http.request<{ userPrincipalName?: string; displayName?: string }>(
          OPERATIONS.me,
          "GET",
          "/me?$select=id,displayName,userPrincipalName,mail",
          { signal },
        );
        return `GET /me → ${data.userPrincipalName ?? "?"}${data.displayName ? ` (${data.displayName})` : ""}`;
      },
    },
    {
      name: shared ? "Mail.Read.Shared" : "Mail.Read",
      permission: shared ? "Mail.Read.Shared" : "Mail.Read",
      detail: `GET ${mb}/mailFolders/inbox`,
      run: async () => {
        const { data } = await ctx.http.request<{ totalItemCount?: number; unreadItemCount?: number }>(
          OPERATIONS.readMail,
          "GET",
          `${mb}/mailFolders/inbox?$select=id,totalItemCount,unreadItemCount`,
          { signal },
        );
        return `GET ${mb}/mailFolders/inbox → ${data.totalItemCount ?? "?"} messages, ${data.unreadItemCount ?? "?"} unread`;
      },
    },
    {
      name: shared ? "Calendars.Read.Shared" : "Calendars.Read",
      permission: shared ? "Calendars.Read.Shared" : "Calendars.Read",
      detail: `GET ${mb}/calendarView (next 24 h)`,
      run: async () => {
        const { data } = await ctx.http.request<{ value?: unknown[] }>(
          OPERATIONS.calendarView,
          "GET",
          `${mb}/calendarView?startDateTime=${encodeURIComponent(now.toISOString())}&endDateTime=${encodeURIComponent(tomorrow.toISOString())}&$top=1&$select=id`,
          { signal },
        );
        return `GET ${mb}/calendarView (next 24 h) → ${(data.value ?? []).length > 0 ? "events found" : "no events"}`;
      },
    },
  ];
  const results = await Promise.all(
    probes.map(async (probe): Promise<VerifyCheck> => {
      try {
        return { name: probe.name, ok: true, permission: probe.permission, detail: await probe.run() };
      } catch (error) {
        return {
          name: probe.name,
          ok: false,
          permission: probe.permission,
          detail: probe.detail,
          error: asError(error),
        };
      }
    }),
  );
  checks.push(...results);

  const send = shared ? "Mail.Send.Shared" : "Mail.Send";
  const granted = scopes?.includes(send.toLowerCase());
  checks.push(
    granted
      ? {
          name: send,
          ok: true,
          permission: send,
          detail: "granted (read from the token's scp claim; nothing was sent)",
        }
      : {
          name: send,
          ok: false,
          permission: send,
          detail: scopes ? "not in the token's scp claim" : "the token's scopes could not be read",
          error: new M365MailError("ACCESS_DENIED", `sending needs the delegated permission ${send}`, {
            source: SOURCE,
            hint: `App registration → API permissions → Add a permission → Microsoft Graph → Delegated permissions → ${send} → Grant admin consent.`,
          }),
        },
  );
  return report();
}
