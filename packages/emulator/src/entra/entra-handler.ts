import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@m365-mail/core";
import type { AdfsService } from "../adfs/adfs-service.js";
import { type EmulatorAdmin, handleAdminRequest } from "../admin.js";
import type { FaultRegistry, FaultSpec, Protocol, RequestCounters } from "../context.js";
import type { DirectoryStore } from "../directory-store.js";
import { aadstsError } from "./aadsts.js";
import {
  DEVICE_CODE_GRANT,
  handleDeviceCodeGrant,
  handleDeviceCodeRequest,
  VERIFICATION_PATH,
} from "./device-code-grant.js";
import type { DeviceCodeStore } from "./device-codes.js";
import { handleDeviceLoginPage } from "./device-login-page.js";
import { instanceDiscovery, openIdConfiguration } from "./discovery.js";
import type { LoopDetector } from "./loop-detector.js";
import type { ProtocolGate } from "./protocol-gate.js";
import type { SmartLockout } from "./smart-lockout.js";
import { handleTokenRequest } from "./token-endpoint.js";
import type { TokenService } from "./tokens.js";
import { userRealm } from "./user-realm.js";

export interface EntraHandlerDeps {
  origin: () => string;
  store: DirectoryStore;
  tokens: TokenService;
  gate: ProtocolGate;
  faults: FaultRegistry;
  counters: RequestCounters;
  loops: LoopDetector;
  lockout?: SmartLockout;
  admin: EmulatorAdmin;
  deviceCodes: DeviceCodeStore;
  log: Logger;
  /** The emulated AD FS: user-realm discovery points federated domains at it; SAML grants redeem its assertions. */
  adfs?: AdfsService;
  /** An IMAP/POP3 login passed introspection (the Dovecot part schedules the session's end). */
  onProtocolLogin?: (login: { upn: string; protocol: Protocol; expiresAt: Date }) => void;
}

const MAX_BODY = 1024 * 1024;
const JSON_TYPE = "application/json; charset=utf-8";
const PROTOCOLS: Record<string, Protocol> = {
  imap: "imap",
  pop3: "pop3",
  pop: "pop3",
  smtp: "smtp",
  graph: "graph",
};

/** Routes of the Entra ID part, plus `/_admin/` and `/introspect/`, on one HTTPS server. */
export function createEntraHandler(
  deps: EntraHandlerDeps,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    res.on("finish", () => deps.log.debug(`${req.method} ${req.url?.split("?")[0]} → ${res.statusCode}`));
    route(deps, req, res).catch((error: unknown) => {
      deps.log.error("request failed", { path: req.url, error });
      if (!res.headersSent) {
        const answer = aadstsError(50000);
        res.writeHead(500, { "content-type": JSON_TYPE }).end(JSON.stringify(answer.body));
      } else res.destroy();
    });
  };
}

function readBody(req: IncomingMessage): () => Promise<string> {
  let cached: Promise<string> | undefined;
  return () => {
    cached ??= new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) {
          reject(new Error("request body over 1 MB"));
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });
    return cached;
  };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": JSON_TYPE,
    "cache-control": "no-store, no-cache",
    pragma: "no-cache",
    "x-ms-request-id": randomUUID(),
    "x-ms-ests-server": "2.1 m365-mail-emulator",
    ...headers,
  });
  res.end(JSON.stringify(body));
}

async function route(deps: EntraHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", deps.origin());
  const path = url.pathname;
  const method = req.method ?? "GET";
  const body = readBody(req);

  if (path === "/_admin" || path.startsWith("/_admin/")) {
    return handleAdminRequest(req, res, url, deps.admin, body);
  }

  if (path === VERIFICATION_PATH) return handleDeviceLoginPage(req, res, deps, body);

  const introspect = /^\/introspect\/([^/]+)\/?$/.exec(path);
  if (introspect) {
    const protocol = PROTOCOLS[introspect[1]!.toLowerCase()];
    if (!protocol) return sendJson(res, 404, { active: false, error: `unknown protocol ${introspect[1]}` });
    if (await applyFault(deps, req, res, "introspection", path)) return;
    deps.counters.increment(`entra.introspect.${protocol}`);
    const form = method === "POST" ? new URLSearchParams(await body()) : url.searchParams;
    const token = form.get("token") ?? bearer(req.headers.authorization) ?? "";
    const result = deps.gate.authorize(token, protocol);
    if (!result.ok)
      return sendJson(res, 200, { active: false, error: result.reason, error_description: result.message });
    const { claims, user } = result;
    if (protocol === "imap" || protocol === "pop3") {
      deps.onProtocolLogin?.({ upn: user.upn, protocol, expiresAt: new Date(claims.exp * 1000) });
    }
    return sendJson(res, 200, {
      active: true,
      username: user.upn,
      upn: user.upn,
      scope: claims.scp,
      aud: claims.aud,
      exp: claims.exp,
      iat: claims.iat,
      client_id: claims.appid,
      sub: claims.oid,
      tid: claims.tid,
      token_type: "Bearer",
      // Mailboxes this token may open (",own,shared…,"): Dovecot never sends the login name to
      // introspection, so its shared-mailbox passdb checks the name against this list.
      mailboxes: `,${mailboxesOf(deps.store, user.upn).join(",")},`,
    });
  }

  const segments = path.split("/").filter(Boolean);
  const tenant = segments[0] ?? "";
  const rest = `/${segments.slice(1).join("/")}`;

  if (rest === "/oauth2/v2.0/token") {
    if (method !== "POST") {
      return sendJson(res, 405, {
        error: "invalid_request",
        error_description: "The token endpoint only accepts POST requests.",
      });
    }
    const fault = await applyFault(deps, req, res, "entra", path);
    if (fault === true) return;
    const form = new URLSearchParams(await body());
    const correlationId =
      form.get("client-request-id") ?? headerValue(req.headers["client-request-id"]) ?? randomUUID();
    const answer =
      form.get("grant_type") === DEVICE_CODE_GRANT
        ? handleDeviceCodeGrant(deps, tenant, form, correlationId)
        : handleTokenRequest(deps, tenant, form, correlationId);
    if (fault === "emptyToken" && answer.status === 200) delete answer.body.access_token;
    return sendJson(res, answer.status, answer.body, { "client-request-id": correlationId });
  }

  if (rest === "/oauth2/v2.0/devicecode") {
    if (method !== "POST") {
      return sendJson(res, 405, {
        error: "invalid_request",
        error_description: "The device code endpoint only accepts POST requests.",
      });
    }
    if ((await applyFault(deps, req, res, "entra", path)) === true) return;
    const form = new URLSearchParams(await body());
    const correlationId = headerValue(req.headers["client-request-id"]) ?? randomUUID();
    const answer = handleDeviceCodeRequest(deps, tenant, form, correlationId);
    return sendJson(res, answer.status, answer.body, { "client-request-id": correlationId });
  }

  if (method !== "GET")
    return sendJson(res, 405, {
      error: "invalid_request",
      error_description: `${method} is not supported here.`,
    });

  const realm = /^\/userrealm\/([^/]+)$/.exec(rest);
  if (realm && tenant.toLowerCase() === "common") {
    if ((await applyFault(deps, req, res, "entra", path)) === true) return;
    deps.counters.increment("entra.userrealm");
    return sendJson(res, 200, userRealm(deps.store, deps.adfs, decodeURIComponent(realm[1]!)));
  }

  if (rest === "/v2.0/.well-known/openid-configuration") {
    if ((await applyFault(deps, req, res, "entra", path)) === true) return;
    deps.counters.increment("entra.openid-configuration");
    const known = ["common", "organizations", "consumers"].includes(tenant.toLowerCase());
    const found = deps.store.findTenant(tenant);
    if (!known && !found) return sendJson(res, 400, aadstsError(90002, { tenant }).body);
    return sendJson(res, 200, openIdConfiguration(deps.origin(), found ? found.id : "{tenantid}"));
  }

  if (rest === "/discovery/v2.0/keys" || rest === "/discovery/keys") {
    if ((await applyFault(deps, req, res, "entra", path)) === true) return;
    deps.counters.increment("entra.keys");
    const found = deps.store.findTenant(tenant);
    return sendJson(res, 200, deps.tokens.jwks(found?.id ?? "{tenantid}"));
  }

  if (rest === "/discovery/instance") {
    deps.counters.increment("entra.instance-discovery");
    return sendJson(
      res,
      200,
      instanceDiscovery(deps.origin(), url.searchParams.get("authorization_endpoint")),
    );
  }

  return sendJson(res, 404, {
    error: "not_found",
    error_description: `The emulator has no route ${method} ${path}.`,
  });
}

/**
 * Applies an armed fault. Returns true when the fault answered the request (or dropped it),
 * "emptyToken" when the answer must lose its access_token, false when the request proceeds.
 */
async function applyFault(
  deps: EntraHandlerDeps,
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
  path: string,
): Promise<boolean | "emptyToken"> {
  const fault: FaultSpec | undefined = deps.faults.take(target, path);
  if (!fault) return false;
  deps.counters.increment(`${target}.fault.${fault.kind}`);
  deps.log.info(`fault ${fault.kind} on ${path}`);
  switch (fault.kind) {
    case "delay":
      await sleep(fault.delayMs ?? 1000);
      return false;
    case "status429": {
      const seconds = String(fault.retryAfterSeconds ?? 1);
      sendJson(res, 429, aadstsError(90055).body, { "retry-after": seconds });
      return true;
    }
    case "status500":
      sendJson(res, 500, aadstsError(50000).body);
      return true;
    case "status503":
    case "status504": {
      const [status, title] =
        fault.kind === "status503" ? [503, "Service Unavailable"] : [504, "Gateway Timeout"];
      const headers: Record<string, string> = { "content-type": "text/html; charset=utf-8" };
      if (fault.retryAfterSeconds !== undefined) headers["retry-after"] = String(fault.retryAfterSeconds);
      res.writeHead(status, headers);
      res.end(
        `<!DOCTYPE html><html><head><title>${title}</title></head><body><h2>${status} - ${title}</h2></body></html>`,
      );
      return true;
    }
    case "malformedJson":
      // A body cut off mid-way, as a proxy dropping the connection would leave it.
      res.writeHead(200, { "content-type": JSON_TYPE });
      res.end(
        '{"token_type":"Bearer","scope":"https://graph.microsoft.com/User.Read","expires_in":3599,"access_tok',
      );
      return true;
    case "reset":
      req.socket.destroy();
      return true;
    case "emptyToken":
      return "emptyToken";
    case "lateSentItems":
    case "throttled":
    case "status400":
      // Never taken here (their targets are "sentitems", "imap", "graph"); listed so the switch stays exhaustive.
      return false;
  }
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match?.[1];
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The user's own mailbox and every shared mailbox that lists the user as a delegate, lower-cased. */
function mailboxesOf(store: DirectoryStore, upn: string): string[] {
  const self = upn.toLowerCase();
  const shared = store
    .tenants()
    .flatMap((tenant) => tenant.users)
    .filter((u) => (u.delegates ?? []).some((d) => d.toLowerCase() === self))
    .map((u) => u.upn.toLowerCase());
  return [self, ...shared];
}
