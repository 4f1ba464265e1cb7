import { request } from "node:https";
import { type GraphPart, graphPart } from "../src/graph/index.js";
import type { Emulator } from "../src/index.js";
import { passwordGrant, startTestEmulator } from "./helpers.js";

export interface GraphAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json: any;
}

export interface GraphFixture {
  emulator: Emulator;
  graph: GraphPart;
  origin: string;
  /** The emulator's data folder (the mailbox store lives below it). */
  dataDir: string;
  cleanup(): Promise<void>;
  /**
   * A Graph access token for a demo user. Entra puts every consented permission into `scp`, so the
   * token carries all the demo app's permissions whatever is asked for; see `limitedToken`.
   */
  token(permissions: string[], username?: string): Promise<string>;
  /** A token whose `scp` holds exactly `granted`: the app's admin consent is narrowed while it is issued. */
  limitedToken(granted: string[], username?: string): Promise<string>;
  /** A request against the Graph origin (`path` starts with "/v1.0/") or any absolute URL. */
  call(
    method: string,
    pathOrUrl: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: Buffer | string },
  ): Promise<GraphAnswer>;
}

export const ALL_MAIL = ["User.Read", "Mail.ReadWrite", "Mail.Send", "Calendars.Read"];

export async function startGraphFixture(): Promise<GraphFixture> {
  const graph = graphPart();
  const { emulator, cleanup, dataDir } = await startTestEmulator({ parts: [graph] });
  const tokens = new Map<string, string>();
  const f: GraphFixture = {
    emulator,
    graph,
    origin: graph.origin,
    dataDir,
    cleanup,
    async token(permissions, username = "support@contoso.com") {
      const scope = [...permissions.map((p) => `https://graph.microsoft.com/${p}`), "offline_access"].join(
        " ",
      );
      const key = `${username}|${scope}`;
      const cached = tokens.get(key);
      if (cached) return cached;
      const answer = await passwordGrant(emulator, { username, scope });
      if (answer.status !== 200) throw new Error(`token request failed: ${answer.text}`);
      tokens.set(key, answer.json.access_token);
      return answer.json.access_token as string;
    },
    async limitedToken(granted, username = "support@contoso.com") {
      const before = f.emulator.admin.directory().tenants[0]!.apps[0]!.grantedPermissions;
      f.emulator.admin.updateApp(emulator.clientId, { grantedPermissions: { ...before, graph: granted } });
      try {
        const scope = [...granted.map((p) => `https://graph.microsoft.com/${p}`)].join(" ");
        const answer = await passwordGrant(emulator, { username, scope });
        if (answer.status !== 200) throw new Error(`token request failed: ${answer.text}`);
        return answer.json.access_token as string;
      } finally {
        f.emulator.admin.updateApp(emulator.clientId, { grantedPermissions: before });
      }
    },
    call(method, pathOrUrl, options = {}) {
      const url = pathOrUrl.startsWith("https://") ? pathOrUrl : `${graph.origin}${pathOrUrl}`;
      const headers: Record<string, string> = { ...(options.headers ?? {}) };
      if (options.token) headers.Authorization = `Bearer ${options.token}`;
      let payload: Buffer | undefined;
      if (options.raw !== undefined)
        payload = Buffer.isBuffer(options.raw) ? options.raw : Buffer.from(options.raw);
      else if (options.body !== undefined) {
        payload = Buffer.from(JSON.stringify(options.body));
        headers["Content-Type"] ??= "application/json";
      }
      return new Promise((resolve, reject) => {
        const req = request(url, { method, ca: emulator.caPem, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const body = Buffer.concat(chunks);
            const text = body.toString("utf8");
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        req.setTimeout(20_000, () => req.destroy(new Error("test request timed out")));
        req.end(payload);
      });
    },
  };
  return f;
}

/** A JSON sendMail body from support@ to the given addresses. */
export function mailTo(to: string[], subject: string, extra: Record<string, unknown> = {}) {
  return {
    message: {
      subject,
      body: { contentType: "Text", content: `Body of ${subject}` },
      toRecipients: to.map((address) => ({ emailAddress: { address } })),
      ...extra,
    },
  };
}

/** Waits until `check` passes, for at most `ms` (delivery is synchronous here; this guards slow disks). */
export async function eventually<T>(check: () => Promise<T>, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
