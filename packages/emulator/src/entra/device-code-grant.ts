import { registerSecret } from "@m365-mail/core";
import { type AadstsAnswer, type AadstsCode, aadstsError } from "./aadsts.js";
import type { DeviceCodeStore } from "./device-codes.js";
import {
  checkAccount,
  checkApp,
  parseScope,
  Refusal,
  refuse,
  success,
  type TokenAnswer,
  type TokenEndpointDeps,
} from "./token-endpoint.js";

/** RFC 8628's grant type, as Microsoft's token endpoint takes it. */
export const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

export interface DeviceCodeDeps extends TokenEndpointDeps {
  deviceCodes: DeviceCodeStore;
  origin: () => string;
}

/** The path of the page where a person enters the user code (Microsoft's is https://microsoft.com/devicelogin). */
export const VERIFICATION_PATH = "/devicelogin";

function answer(error: unknown, correlationId: string, deps: TokenEndpointDeps): TokenAnswer {
  if (!(error instanceof Refusal)) throw error;
  deps.counters.increment(`entra.token.error.${error.code}`);
  return aadstsError(error.code, error.params, correlationId);
}

/**
 * An answer of the device-code poll whose AADSTS number Microsoft does not document (`slow_down`,
 * `authorization_declined`): Microsoft's shape with the RFC 8628 `error` value clients branch on.
 */
function variant(base: AadstsCode, error: string, text: string, correlationId: string): AadstsAnswer {
  const built = aadstsError(base, {}, correlationId);
  built.body.error = error;
  built.body.error_description = String(built.body.error_description).replace(
    /^AADSTS\d+: [^\r]*/,
    `AADSTS${base}: ${text}`,
  );
  return built;
}

/**
 * `POST /{tenant}/oauth2/v2.0/devicecode`: client_id and scope in, a device code, a user code and the
 * verification page out. The app must allow public client flows, as for ROPC.
 */
export function handleDeviceCodeRequest(
  deps: DeviceCodeDeps,
  tenantSegment: string,
  form: URLSearchParams,
  correlationId: string,
): TokenAnswer {
  deps.counters.increment("entra.devicecode");
  try {
    const segment = tenantSegment.toLowerCase();
    const anyTenant = segment === "organizations" || segment === "common";
    const fixed = anyTenant ? undefined : deps.store.findTenant(segment);
    if (!anyTenant && !fixed) refuse(90002, { tenant: tenantSegment });
    const clientId = form.get("client_id") ?? "";
    if (!clientId) refuse(900144, { name: "client_id" });
    const tenant = fixed ?? deps.store.findAppAnywhere(clientId)?.tenant;
    if (!tenant) return refuse(700016, { clientId, tenantName: tenantSegment });
    checkApp(deps, tenant, clientId, form);
    const scope = form.get("scope") ?? "";
    parseScope(scope, tenant);
    const record = deps.deviceCodes.create(tenantSegment, clientId, scope);
    const uri = `${deps.origin()}${VERIFICATION_PATH}`;
    return {
      status: 200,
      body: {
        user_code: record.userCode,
        device_code: record.deviceCode,
        verification_uri: uri,
        expires_in: Math.round((record.expiresAt - record.createdAt) / 1000),
        interval: record.interval,
        message: `To sign in, use a web browser to open the page ${uri} and enter the code ${record.userCode} to authenticate.`,
      },
    };
  } catch (error) {
    return answer(error, correlationId, deps);
  }
}

/**
 * `grant_type=urn:ietf:params:oauth:grant-type:device_code` on the token endpoint: pending until a
 * person approves the user code (page or admin API), `slow_down` when polled faster than the interval
 * (which then grows by 5 s), `expired_token` after `expires_in`, `authorization_declined` after a denial.
 * The approved sign-in counts as an MFA sign-in: its refresh token satisfies an MFA policy later.
 */
export function handleDeviceCodeGrant(
  deps: DeviceCodeDeps,
  tenantSegment: string,
  form: URLSearchParams,
  correlationId: string,
): TokenAnswer {
  deps.counters.increment("entra.token");
  deps.counters.increment("entra.token.device_code");
  const deviceCode = form.get("device_code") ?? "";
  registerSecret(deviceCode);
  try {
    const segment = tenantSegment.toLowerCase();
    if (segment === "consumers") refuse(9001023);
    const clientId = form.get("client_id") ?? "";
    if (!clientId) refuse(900144, { name: "client_id" });
    if (!deviceCode) refuse(900144, { name: "device_code" });
    const record = deps.deviceCodes.findByDeviceCode(deviceCode);
    if (!record || record.clientId.toLowerCase() !== clientId.toLowerCase()) return refuse(70018);
    const now = Date.now();
    if (record.state === "redeemed") refuse(70000);
    if (now >= record.expiresAt) refuse(70019);
    if (record.state === "denied") {
      deps.counters.increment("entra.token.error.authorization_declined");
      return variant(
        70000,
        "authorization_declined",
        "The user declined the authorization request.",
        correlationId,
      );
    }
    if (record.state === "pending") {
      // 100 ms of slack: the client measures from its last answer, the emulator from the last request.
      const spacing = Math.max(record.interval, record.enforcedInterval);
      const tooSoon = record.lastPollAt !== undefined && now - record.lastPollAt < spacing * 1000 - 100;
      record.lastPollAt = now;
      if (tooSoon) {
        record.interval += 5;
        deps.counters.increment("entra.token.error.slow_down");
        return variant(
          70016,
          "slow_down",
          "The client is polling too often; wait longer between requests.",
          correlationId,
        );
      }
      refuse(70016);
    }
    const found = deps.store.findUser(record.upn ?? "");
    if (!found) return refuse(50034, { tenant: tenantSegment });
    const { tenant, user } = found;
    if (!["organizations", "common"].includes(segment) && deps.store.findTenant(segment)?.id !== tenant.id) {
      return refuse(50034, { tenant: tenantSegment });
    }
    const app = checkApp(deps, tenant, clientId, form);
    const scope = parseScope(record.scope, tenant);
    if (user.locked) refuse(50053);
    checkAccount(tenant, user, app, scope.resource, true);
    record.state = "redeemed";
    deps.counters.increment(`entra.token.device_code:${user.upn.toLowerCase()}`);
    return success(deps, tenant, user, app, scope.resource, scope.oidc, form, true);
  } catch (error) {
    return answer(error, correlationId, deps);
  }
}
