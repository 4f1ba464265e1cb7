import {
  type AadstsHintContext,
  type HttpClient,
  oauthErrorOf,
  readTokenResponse,
  type TokenBody,
} from "@m365-mail/auth-ropc";
import { type Logger, M365MailError, registerSecret } from "@m365-mail/core";
import { aborted, deviceCodeError, SOURCE } from "./errors.js";

/** What a person needs to approve the sign-in: shown by the `onDeviceCode` callback. */
export interface DeviceCodeInfo {
  /** The short code to type at the page, e.g. "FJ8KNSTBE". */
  readonly userCode: string;
  /** The page, e.g. https://microsoft.com/devicelogin. */
  readonly verificationUri: string;
  /** Microsoft's sentence naming both, ready to print. */
  readonly message: string;
  /** After this the code is void (DEVICE_CODE_EXPIRED). */
  readonly expiresAt: Date;
}

export interface DeviceCodeFlowInput {
  /** `{authorityHost}/{tenant}` */
  authority: string;
  clientId: string;
  /** Full-URI scopes of one resource; offline_access and the sign-in scopes are added. */
  scopes: readonly string[];
  http: HttpClient;
  context: AadstsHintContext;
  onDeviceCode: (info: DeviceCodeInfo) => void | Promise<void>;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/** RFC 8628 §3.5: after `slow_down` the interval grows by 5 s for this and every later poll. */
const SLOW_DOWN_STEP_S = 5;
// Some seconds past expires_in before giving up locally: the server's expired_token is the real end.
const EXPIRY_GRACE_MS = 5_000;

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

async function post(input: DeviceCodeFlowInput, path: string, body: string) {
  return input.http.send({
    method: "POST",
    url: `${input.authority}${path}`,
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body,
    ...(input.signal ? { signal: input.signal } : {}),
  });
}

/** The device authorization answer, checked field by field (a proxy's 200 page must not pass). */
function readDeviceCode(body: TokenBody | Record<string, unknown>, where: string) {
  const b = body as Record<string, unknown>;
  const str = (k: string) => (typeof b[k] === "string" && b[k] !== "" ? (b[k] as string) : undefined);
  const num = (k: string) => (Number.isFinite(Number(b[k])) && Number(b[k]) >= 0 ? Number(b[k]) : undefined);
  const deviceCode = str("device_code");
  const userCode = str("user_code");
  const verificationUri = str("verification_uri") ?? str("verification_url");
  if (!deviceCode || !userCode || !verificationUri) {
    throw deviceCodeError(
      "INVALID_RESPONSE",
      `${where} answered without device_code, user_code or verification_uri`,
      {
        hint: "A proxy may be answering instead of Entra ID: check authorityHost and the proxy option.",
      },
    );
  }
  const expiresIn = num("expires_in") ?? 900;
  const interval = num("interval") ?? 5;
  const message =
    str("message") ??
    `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`;
  return { deviceCode, userCode, verificationUri, expiresIn, interval, message };
}

/**
 * The device code flow (RFC 8628) against Entra ID's v2 endpoints: asks for a code, hands it to
 * `onDeviceCode`, then polls the token endpoint every `interval` seconds (longer after `slow_down`)
 * until a person approves (the token answer), declines (DEVICE_CODE_DECLINED) or the code expires
 * (DEVICE_CODE_EXPIRED). Outages while polling do not end the sign-in: the next poll comes after the interval.
 */
export async function runDeviceCodeFlow(
  input: DeviceCodeFlowInput,
): Promise<{ body: TokenBody; started: number }> {
  const { logger } = input;
  const scope = [...new Set([...input.scopes, "offline_access", "openid", "profile"])].join(" ");
  const where = `POST ${input.authority}/oauth2/v2.0/devicecode`;
  const codeAnswer = await post(input, "/oauth2/v2.0/devicecode", form({ client_id: input.clientId, scope }));
  const code = readDeviceCode(readTokenResponseLoose(codeAnswer, where, input.context), where);
  registerSecret(code.deviceCode);
  const expiresAt = Date.now() + code.expiresIn * 1000;
  logger.info(`device code issued; waiting up to ${code.expiresIn} s for a person to approve it`);
  await input.onDeviceCode({
    userCode: code.userCode,
    verificationUri: code.verificationUri,
    message: code.message,
    expiresAt: new Date(expiresAt),
  });

  let interval = code.interval;
  const pollBody = form({
    grant_type: "urn:ietf:params:oauth:grant-type:device_code",
    client_id: input.clientId,
    device_code: code.deviceCode,
  });
  const tokenWhere = `POST ${input.authority}/oauth2/v2.0/token`;
  for (;;) {
    await wait(interval * 1000, input.signal);
    if (Date.now() > expiresAt + EXPIRY_GRACE_MS) throw expired(code.expiresIn);
    const started = Date.now();
    try {
      const answer = await post(input, "/oauth2/v2.0/token", pollBody);
      return { body: readTokenResponse(answer, tokenWhere, input.context, SOURCE), started };
    } catch (error) {
      if (input.signal?.aborted) throw aborted(input.signal.reason);
      const oauth = oauthErrorOf(error);
      if (oauth === "authorization_pending") continue;
      if (oauth === "slow_down") {
        interval += SLOW_DOWN_STEP_S;
        logger.debug(`Entra ID asked to slow down; polling every ${interval} s`);
        continue;
      }
      if (oauth === "authorization_declined" || oauth === "access_denied") {
        throw deviceCodeError(
          "DEVICE_CODE_DECLINED",
          `the sign-in of ${input.context.username} was declined at ${code.verificationUri}`,
          {
            cause: error,
            serverCode: (error as M365MailError).serverCode,
            hint: "Start the sign-in again and choose Allow (Continue) on the page; if you did not start it, tell your administrator.",
          },
        );
      }
      if (oauth === "expired_token") throw expired(code.expiresIn, error);
      if (oauth === "bad_verification_code") {
        throw deviceCodeError("AUTH_FAILED", "Entra ID no longer knows this device code", {
          cause: error,
          hint: "Start the sign-in again: a device code is redeemed once, and only within its lifetime.",
        });
      }
      if (error instanceof M365MailError && error.retryable) {
        // A person may be typing the code right now: an outage postpones the next poll, it does not end the sign-in.
        const delay = Math.max(interval, error.retryAfterSeconds ?? 0);
        logger.warn(`polling for the device code sign-in failed (${error.code}); next try in ${delay} s`);
        if (delay > interval) await wait((delay - interval) * 1000, input.signal);
        continue;
      }
      throw error;
    }
  }
}

function expired(seconds: number, cause?: unknown): M365MailError {
  return deviceCodeError("DEVICE_CODE_EXPIRED", `nobody entered the device code within ${seconds} s`, {
    ...(cause ? { cause, serverCode: (cause as M365MailError).serverCode } : {}),
    hint: "Start the sign-in again and enter the new code at the page before it expires (15 minutes at Microsoft).",
  });
}

/** The device authorization answer has no access_token: read errors as usual, accept any JSON object on 200. */
function readTokenResponseLoose(
  res: Awaited<ReturnType<HttpClient["send"]>>,
  where: string,
  context: AadstsHintContext,
): Record<string, unknown> {
  if (res.status >= 200 && res.status < 300) {
    try {
      const value: unknown = JSON.parse(res.text);
      if (value && typeof value === "object") return value as Record<string, unknown>;
    } catch {
      // Falls through to the error below.
    }
    throw deviceCodeError("INVALID_RESPONSE", `${where} answered ${res.status} without a JSON object`, {
      status: res.status,
      hint: "A proxy or captive portal may be answering instead of Entra ID: check authorityHost and the proxy option.",
    });
  }
  return readTokenResponse(res, where, context, SOURCE);
}
