import { request } from "node:https";
import {
  DEMO_PASSWORD,
  type Emulator,
  type StartTestEmulatorOptions,
  startTestEmulator as startEmulatorInTempDir,
} from "../src/index.js";

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** An HTTPS request that trusts only the emulator's CA (as a client with NODE_EXTRA_CA_CERTS would). */
export function httpsRequest(
  emulator: Pick<Emulator, "caPem">,
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: init.method ?? "GET", ca: emulator.caPem, headers: init.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("test request timed out")));
    req.end(init.body);
  });
}

export function postForm(emulator: Emulator, url: string, form: Record<string, string>): Promise<HttpAnswer> {
  return httpsRequest(emulator, url, {
    method: "POST",
    body: new URLSearchParams(form).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
}

export function postJson(
  emulator: Emulator,
  path: string,
  body: unknown,
  method = "POST",
): Promise<HttpAnswer> {
  return httpsRequest(emulator, `${emulator.authorityHost}${path}`, {
    method,
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
}

/** A password grant for a demo user; `scope` defaults to an IMAP scope plus offline_access. */
export function passwordGrant(
  emulator: Emulator,
  options: {
    username?: string;
    password?: string;
    scope?: string;
    tenant?: string;
    clientId?: string;
    extra?: Record<string, string>;
  } = {},
): Promise<HttpAnswer> {
  return postForm(
    emulator,
    `${emulator.authorityHost}/${options.tenant ?? emulator.tenantId}/oauth2/v2.0/token`,
    {
      grant_type: "password",
      client_id: options.clientId ?? emulator.clientId,
      username: options.username ?? "support@contoso.com",
      password: options.password ?? DEMO_PASSWORD,
      scope: options.scope ?? "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
      ...options.extra,
    },
  );
}

export function refreshGrant(
  emulator: Emulator,
  refreshToken: string,
  scope: string,
  clientId = emulator.clientId,
) {
  return postForm(emulator, `${emulator.authorityHost}/${emulator.tenantId}/oauth2/v2.0/token`, {
    grant_type: "refresh_token",
    client_id: clientId,
    refresh_token: refreshToken,
    scope,
  });
}

export function decodeJwt(token: string): { header: any; claims: any } {
  const [h, c] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h!, "base64url").toString("utf8")),
    claims: JSON.parse(Buffer.from(c!, "base64url").toString("utf8")),
  };
}

/** Starts an emulator (no parts unless given) in a fresh data folder; `cleanup` stops it and removes the folder. */
export async function startTestEmulator(
  options: StartTestEmulatorOptions = {},
): Promise<{ emulator: Emulator; dataDir: string; cleanup: () => Promise<void> }> {
  const emulator = await startEmulatorInTempDir({
    prefix: "m365-emulator-test-",
    ...options,
    parts: options.parts ?? [],
  });
  return { emulator, dataDir: emulator.dataDir, cleanup: () => emulator.stop() };
}
