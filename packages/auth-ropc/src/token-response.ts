import { M365MailError } from "@m365-mail/core";
import { type AadstsHintContext, aadstsNumber, describeAadsts } from "./aadsts.js";
import { type HttpResponse, SOURCE } from "./http-client.js";

/** The fields of a successful token answer we use (v2 and v1 shapes). */
export interface TokenBody {
  access_token: string;
  refresh_token?: string;
  /** Seconds; v1 sends a string. */
  expires_in?: number | string;
  scope?: string;
  id_token?: string;
  token_type?: string;
  [field: string]: unknown;
}

// The OAuth `error` value of a refused grant, kept beside the error so the provider can tell
// "refresh token no longer valid" (invalid_grant) from everything else without parsing text.
const oauthErrors = new WeakMap<M365MailError, string>();

export function oauthErrorOf(error: unknown): string | undefined {
  return error instanceof M365MailError ? oauthErrors.get(error) : undefined;
}

/** Retry-After in seconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function bodyKind(res: HttpResponse): string {
  const type = (res.headers["content-type"] ?? "").split(";")[0]!.trim();
  if (type === "text/html" || /^\s*<(!doctype|html)/i.test(res.text)) return "an HTML page";
  if (res.text.length === 0) return "an empty body";
  return `a body that is not valid JSON (${type || "no content type"}, ${res.text.length} bytes)`;
}

/**
 * Turns a token-endpoint answer into its body, or throws the M365MailError a person can act on.
 * Messages name the status and the AADSTS code, never the body (it may echo what we sent).
 */
export function readTokenResponse(
  res: HttpResponse,
  where: string,
  context: AadstsHintContext,
  /** The component named in messages ("auth-device-code" when that package reads an answer). */
  source: string = SOURCE,
): TokenBody {
  const body = parseJsonObject(res.text);
  const retryAfterSeconds = parseRetryAfter(res.headers["retry-after"]);
  const status = res.status;
  if (status >= 200 && status < 300) {
    if (!body) {
      throw new M365MailError("INVALID_RESPONSE", `${where} answered ${status} with ${bodyKind(res)}`, {
        source,
        status,
        hint: "A proxy or captive portal may be answering instead of Entra ID: check authorityHost and the proxy option.",
      });
    }
    if (typeof body.access_token !== "string" || body.access_token.length === 0) {
      throw new M365MailError("INVALID_RESPONSE", `${where} answered ${status} without an access token`, {
        source,
        status,
        hint: "Entra ID sent an incomplete answer; this is retried. If it persists, check authorityHost and the proxy option.",
      });
    }
    return body as TokenBody;
  }

  const oauthError = typeof body?.error === "string" ? body.error : undefined;
  const description = typeof body?.error_description === "string" ? body.error_description : undefined;
  const aadsts = body ? aadstsNumber(body.error_codes, description) : undefined;
  const serverCode = aadsts !== undefined ? `AADSTS${aadsts}` : oauthError;
  const cause = oauthError ? new Error(`${oauthError}: ${(description ?? "").split(/\r?\n/)[0]}`) : undefined;
  const entry = oauthError ? describeAadsts(aadsts, oauthError) : undefined;

  let error: M365MailError;
  if (status === 429 || (entry?.code === "THROTTLED" && status >= 500)) {
    error = new M365MailError(
      "THROTTLED",
      `${where} answered 429 Too Many Requests${retryAfterSeconds !== undefined ? ` (Retry-After ${retryAfterSeconds} s)` : ""}`,
      {
        source,
        status,
        serverCode,
        cause,
        retryAfterSeconds,
        hint: "Entra ID is throttling token requests: reuse one provider per user so tokens come from its cache.",
      },
    );
  } else if (status >= 500) {
    error = new M365MailError(
      "SERVER_ERROR",
      `${where} answered ${status}${body ? (serverCode ? ` (${serverCode})` : "") : ` with ${bodyKind(res)} instead of JSON`}`,
      {
        source,
        status,
        serverCode,
        cause,
        retryAfterSeconds,
        hint: "Entra ID (or a proxy in front of it) failed; this is retried. If it persists, check the service health and the proxy option.",
      },
    );
  } else if (entry) {
    error = new M365MailError(
      entry.code,
      `sign-in of ${context.username ?? "the user"} refused: ${entry.title} (${serverCode}${aadsts !== undefined && oauthError ? `, ${oauthError}` : ""})`,
      { source, status, serverCode, cause, retryAfterSeconds, hint: entry.hint(context) },
    );
  } else if (oauthError) {
    // Unknown code: show Microsoft's first line, which names the problem; it never holds our secrets.
    const first = (description ?? "").split(/\r?\n/)[0]!.slice(0, 300);
    error = new M365MailError(
      "AUTH_FAILED",
      `sign-in of ${context.username ?? "the user"} refused (${serverCode}): ${first}`,
      {
        source,
        status,
        serverCode,
        cause,
        hint: "Look the AADSTS code up at https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes.",
      },
    );
  } else if (status === 404) {
    error = new M365MailError("CONFIG_INVALID", `${where} answered 404: no token endpoint there`, {
      source,
      status,
      hint: "Check authorityHost, the cloud and tenantId.",
    });
  } else {
    error = new M365MailError(
      "INVALID_RESPONSE",
      `${where} answered ${status} with ${body ? "JSON that is not an OAuth error" : bodyKind(res)}`,
      {
        source,
        status,
        hint: "A proxy or captive portal may be answering instead of Entra ID: check authorityHost and the proxy option.",
      },
    );
  }
  if (oauthError) oauthErrors.set(error, oauthError);
  throw error;
}

/** Seconds until expiry from a token answer; v1 sends strings, a missing value means one hour. */
export function expiresInSeconds(body: TokenBody): number {
  const n = Number(body.expires_in);
  return Number.isFinite(n) && n > 0 ? n : 3600;
}
