import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AccessToken, GetTokenOptions, Resource, TokenProvider } from "@m365-mail/core";

export interface FakeRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json(): any;
  at: number;
}

export interface FakeReply {
  status?: number;
  headers?: Record<string, string>;
  json?: unknown;
  body?: string | Buffer;
  /** Destroy the socket without answering (a dropped connection). */
  drop?: boolean;
  delayMs?: number;
}

export type FakeHandler = (request: FakeRequest) => FakeReply | Promise<FakeReply>;

/** A tiny Graph stand-in on 127.0.0.1 (random port) for unit tests: each test supplies the answers. */
export interface FakeGraph {
  readonly origin: string;
  readonly requests: FakeRequest[];
  inFlight: number;
  maxInFlight: number;
  handle(handler: FakeHandler): void;
  close(): Promise<void>;
}

export async function startFakeGraph(handler: FakeHandler = () => ({ status: 404 })): Promise<FakeGraph> {
  let current = handler;
  const requests: FakeRequest[] = [];
  const fake: FakeGraph = {
    origin: "",
    requests,
    inFlight: 0,
    maxInFlight: 0,
    handle(h) {
      current = h;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      fake.inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
      const body = Buffer.concat(chunks);
      const request: FakeRequest = {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        headers: req.headers,
        body,
        json: () => JSON.parse(body.toString("utf8")),
        at: Date.now(),
      };
      requests.push(request);
      try {
        const reply = await current(request);
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        if (reply.drop) {
          req.socket.destroy();
          return;
        }
        const headers: Record<string, string> = { ...reply.headers };
        let payload: string | Buffer = reply.body ?? "";
        if (reply.json !== undefined) {
          payload = JSON.stringify(reply.json);
          headers["content-type"] ??= "application/json";
        }
        res.writeHead(reply.status ?? 200, { date: new Date().toUTCString(), ...headers });
        res.end(payload);
      } catch (error) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(error));
      } finally {
        fake.inFlight--;
      }
    });
  });
  // Connections that linger would keep the test process alive.
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  (fake as { origin: string }).origin = `http://127.0.0.1:${port}`;
  return fake;
}

export function graphErrorReply(
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): FakeReply {
  return {
    status,
    headers,
    json: { error: { code, message, innerError: { date: new Date().toISOString(), "request-id": "r1" } } },
  };
}

/** An unsigned JWT-shaped token with the claims that matter to the transport. */
export function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}.c2lnbmF0dXJl`;
}

export interface FakeAuth extends TokenProvider {
  calls: GetTokenOptions[];
}

/** A TokenProvider handing out `tokens` in order (the last one repeats). */
export function fakeAuth(
  options: { username?: string; tokens?: string[]; scp?: string; aud?: string } = {},
): FakeAuth {
  let n = 0;
  const calls: GetTokenOptions[] = [];
  const username = options.username ?? "support@contoso.com";
  const tokens = options.tokens ?? [
    fakeJwt({
      aud: options.aud ?? "https://graph.microsoft.com",
      scp: options.scp ?? "User.Read Mail.ReadWrite Mail.Send Calendars.Read",
      upn: username,
    }),
  ];
  return {
    kind: "token-provider",
    name: "fake",
    username,
    calls,
    async getAccessToken(resource: Resource, o: GetTokenOptions = {}): Promise<AccessToken> {
      calls.push(o);
      if (o.forceRefresh) n++;
      const token = tokens[Math.min(n, tokens.length - 1)]!;
      return { token, resource, expiresAt: new Date(Date.now() + 3_600_000), scopes: [] };
    },
  };
}
