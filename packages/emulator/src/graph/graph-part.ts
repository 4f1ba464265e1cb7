import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { M365MailError } from "@m365-mail/core";
import type { EmulatorContext, FaultSpec } from "../context.js";
import { closeServer, listen } from "../https-server.js";
import type { EmulatorPart, PartInfo } from "../part.js";
import type { SendingQuota, SendingQuotaLimits } from "../sending-quota.js";
import { createMailStore, type MailStore } from "../store/index.js";
import { withLateSentItems } from "../store/late-sent-items.js";
import { runBatch } from "./batch.js";
import { authenticate } from "./graph-auth.js";
import { GraphError } from "./graph-error.js";
import { GraphService } from "./graph-service.js";
import type { GraphRequest, GraphResponse } from "./graph-types.js";
import {
  errorResponse,
  faultResponse,
  lowerCaseHeaders,
  type ResponseIds,
  readBody,
  sleep,
  writeResponse,
} from "./http-io.js";
import { attach } from "./mail/attachments.js";
import { attachmentId } from "./message-resource.js";
import { StoreMailboxView } from "./store-view.js";
import { type GraphLimits, GraphThrottle } from "./throttle.js";
import { MAX_UPLOAD_CHUNK_BYTES, UploadSessions } from "./upload-sessions.js";

export interface GraphPartOptions {
  /** The emulator's mailbox store. @default createMailStore({ root: ctx.dataDir }) */
  store?: MailStore;
  /** Port of the Graph origin (`https://127.0.0.1:<port>/v1.0`). @default 0 (a free port) */
  port?: number;
  /** Port of the upload host (`https://localhost:<port>`, the `uploadUrl` of upload sessions). @default 0 */
  uploadPort?: number;
  /** Outlook throttling per app + mailbox. @default { concurrency: 4, requestsPerWindow: 10000, windowSeconds: 600 } */
  limits?: Partial<GraphLimits>;
  /** Largest request body Graph accepts (sendMail, JSON); larger answers 413. @default 4 MiB */
  maxRequestBytes?: number;
}

/** The Graph part of the emulator: `/v1.0` on one listener, upload sessions on a second one. */
export interface GraphPart extends EmulatorPart {
  /** `https://127.0.0.1:<port>`; empty until started. */
  readonly origin: string;
  /** `https://localhost:<port>`; empty until started. */
  readonly uploadOrigin: string;
  limits(): Readonly<GraphLimits>;
  /** Applies to the next request; over HTTP: `POST /_admin/graph/limits` (or `PATCH /_admin/parts/graph`). */
  setLimits(patch: Partial<GraphLimits>): Readonly<GraphLimits>;
  /** Forgets throttling usage (budgets, windows, peaks). */
  resetThrottling(): void;
  /** Per `appId|mailbox`: requests in flight, the most at once, requests used in the current window. */
  throttlingUsage(): Record<string, { inFlight: number; peak: number; used: number }>;
}

export const DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const LIMIT_KEYS: readonly (keyof GraphLimits)[] = [
  "concurrency",
  "requestsPerWindow",
  "windowSeconds",
  "concurrencyRetryAfterSeconds",
];

/** `graphPart()` for `startEmulator({ parts: [graphPart()] })`. */
export function graphPart(options: GraphPartOptions = {}): GraphPart {
  const throttle = new GraphThrottle(options.limits);
  const maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  let origin = "";
  let uploadOrigin = "";
  let servers: Server[] = [];
  // The mailbox's daily recipient limit, shared with SMTP; known once started.
  let quota: SendingQuota | undefined;
  const settings = () => ({
    limits: { ...throttle.current },
    usage: throttle.stats(),
    ...(quota ? { sendingQuota: quota.limits } : {}),
    origin,
    uploadOrigin,
  });

  return {
    name: "graph",
    get origin() {
      return origin;
    },
    get uploadOrigin() {
      return uploadOrigin;
    },
    limits: () => throttle.current,
    setLimits: (patch) => throttle.setLimits(patch),
    resetThrottling: () => throttle.reset(),
    throttlingUsage: () => throttle.stats(),
    settings,
    updateSettings(patch) {
      // Accepts the limits flat ({ concurrency: 2 }) or nested ({ limits: { concurrency: 2 } }).
      const source = (patch.limits && typeof patch.limits === "object" ? patch.limits : patch) as Record<
        string,
        unknown
      >;
      const limits: Partial<GraphLimits> = {};
      for (const key of LIMIT_KEYS) if (source[key] !== undefined) limits[key] = Number(source[key]);
      const sending: Partial<SendingQuotaLimits> = {};
      for (const key of ["recipientsPerDay", "recipientWindowMs"] as const)
        if (source[key] !== undefined) sending[key] = Number(source[key]);
      try {
        throttle.setLimits(limits);
        quota?.setLimits(sending);
      } catch (error) {
        throw new M365MailError("CONFIG_INVALID", `invalid Graph limits: ${(error as Error).message}`, {
          source: "emulator-graph",
          cause: error,
          hint: 'Send e.g. { "concurrency": 4, "requestsPerWindow": 10000, "windowSeconds": 600 } or { "recipientsPerDay": 10000 }.',
        });
      }
      if (patch.resetThrottling === true) throttle.reset();
      return settings();
    },

    async start(ctx: EmulatorContext): Promise<PartInfo> {
      quota = ctx.sendingQuota;
      const store = withLateSentItems(
        options.store ?? createMailStore({ root: ctx.dataDir }),
        ctx.faults,
        "graph",
      );
      const uploads = new UploadSessions(() => uploadOrigin);
      const view = new StoreMailboxView(store);
      const service = new GraphService(ctx, view, throttle, uploads, {
        get origin() {
          return origin;
        },
        get uploadOrigin() {
          return uploadOrigin;
        },
      });
      const tls = { key: ctx.tls.keyPem, cert: ctx.tls.certPem };
      const graphServer = createServer(tls, (req, res) => {
        handleGraph(service, ctx, maxRequestBytes, req, res).catch((error) => failSafe(res, error));
      });
      const uploadServer = createServer(tls, (req, res) => {
        handleUpload(service, ctx, req, res).catch((error) => failSafe(res, error));
      });
      const host = ctx.host === "0.0.0.0" ? "0.0.0.0" : ctx.host;
      const port = await listen(graphServer, host, options.port ?? 0, {
        name: "the Graph part",
        source: "emulator-graph",
        portHint: "graphPart({ port, uploadPort })",
      });
      servers.push(graphServer);
      try {
        const uploadPort = await listen(uploadServer, host, options.uploadPort ?? 0, {
          name: "the Graph part",
          source: "emulator-graph",
          portHint: "graphPart({ port, uploadPort })",
        });
        servers.push(uploadServer);
        const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
        origin = `https://${shown.includes(":") ? `[${shown}]` : shown}:${port}`;
        // Microsoft hands out upload URLs on another host (outlook.office.com); here: localhost.
        uploadOrigin = `https://localhost:${uploadPort}`;
      } catch (error) {
        await this.stop();
        throw error;
      }
      ctx.log(`Graph listening on ${origin} (uploads on ${uploadOrigin})`);
      return {
        cloud: { graphOrigin: origin },
        env: { M365_GRAPH_ORIGIN: origin, M365_GRAPH_UPLOAD_ORIGIN: uploadOrigin },
        graphOrigin: origin,
        uploadOrigin,
      };
    },

    async stop() {
      const closing = servers;
      servers = [];
      await Promise.all(closing.map(closeServer));
    },
  };
}

function ids(req: IncomingMessage): ResponseIds {
  const requestId = randomUUID();
  const header = req.headers["client-request-id"];
  return { requestId, clientRequestId: (Array.isArray(header) ? header[0] : header) || requestId };
}

function countStatus(ctx: EmulatorContext, status: number): void {
  if (status >= 400) ctx.counters.increment(`graph.${status}`);
}

async function handleGraph(
  service: GraphService,
  ctx: EmulatorContext,
  maxRequestBytes: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const responseIds = ids(req);
  const url = new URL(req.url ?? "/", service.origin || "https://127.0.0.1");
  ctx.counters.increment("graph.requests");
  const fault = ctx.faults.take("graph", url.pathname);
  if (fault) ctx.counters.increment("graph.faults");
  if (fault?.kind === "reset") {
    req.socket.destroy();
    return;
  }
  const { body, tooLarge } = await readBody(req, maxRequestBytes);
  const send = (response: GraphResponse, malformed = false) => {
    countStatus(ctx, response.status);
    writeResponse(res, response, responseIds, malformed);
  };
  if (fault && !fault.after) {
    const injected = faultResponse(fault, responseIds);
    if (injected) return send(injected);
  }
  if (tooLarge) {
    res.setHeader("Connection", "close");
    return send(
      errorResponse(
        new GraphError(
          413,
          "RequestEntityTooLarge",
          `The request body exceeds the maximum of ${maxRequestBytes} bytes.`,
        ),
        responseIds,
      ),
    );
  }
  let response: GraphResponse;
  try {
    response = await serveGraph(service, req, url, body, responseIds, fault);
  } catch (error) {
    response = errorResponse(error, responseIds);
  }
  if (response.status === 429) ctx.counters.increment("graph.429");
  if (fault?.after) response = faultResponse(fault, responseIds) ?? response;
  send(response, fault?.kind === "malformedJson");
}

async function serveGraph(
  service: GraphService,
  req: IncomingMessage,
  url: URL,
  body: Buffer,
  responseIds: ResponseIds,
  fault: FaultSpec | undefined,
): Promise<GraphResponse> {
  const match = /^\/(v1\.0|beta)(\/.*)?$/i.exec(url.pathname);
  if (!match) {
    const version = url.pathname.split("/").filter(Boolean)[0] ?? "";
    throw new GraphError(400, "BadRequest", `Invalid version: ${version}`);
  }
  const path = match[2] ?? "/";
  const principal = authenticate(service.ctx, req.headers.authorization);
  const method = (req.method ?? "GET").toUpperCase();
  if (path.replace(/\/+$/, "").toLowerCase() === "/$batch") {
    if (method !== "POST")
      throw new GraphError(
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
      );
    return runBatch(service, principal, body, responseIds);
  }
  const request: GraphRequest = {
    method,
    path,
    query: url.searchParams,
    headers: lowerCaseHeaders(req),
    body,
    requestId: responseIds.requestId,
    clientRequestId: responseIds.clientRequestId,
    principal,
    inBatch: false,
    ...(fault?.kind === "delay" ? { delayMs: fault.delayMs ?? 1000 } : {}),
  };
  return service.dispatch(request);
}

async function handleUpload(
  service: GraphService,
  ctx: EmulatorContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const responseIds = ids(req);
  const url = new URL(req.url ?? "/", service.config.uploadOrigin || "https://localhost");
  ctx.counters.increment("graph.upload.requests");
  const fault = ctx.faults.take("upload", url.pathname);
  if (fault?.kind === "reset") {
    req.socket.destroy();
    return;
  }
  if (fault?.kind === "delay") await sleep(fault.delayMs ?? 1000);
  const { body, tooLarge } = await readBody(req, MAX_UPLOAD_CHUNK_BYTES);
  const send = (response: GraphResponse) => {
    countStatus(ctx, response.status);
    writeResponse(res, response, responseIds, fault?.kind === "malformedJson");
  };
  if (fault && !fault.after) {
    const injected = faultResponse(fault, responseIds);
    if (injected) return send(injected);
  }
  let response: GraphResponse;
  try {
    const session = service.uploads.find(url, req.headers.authorization);
    const method = (req.method ?? "GET").toUpperCase();
    if (method === "DELETE") {
      service.uploads.cancel(session);
      response = { status: 204 };
    } else if (method !== "PUT") {
      throw new GraphError(405, "ErrorInvalidRequest", "The upload URL accepts PUT and DELETE only.");
    } else if (tooLarge) {
      res.setHeader("Connection", "close");
      throw new GraphError(
        413,
        "RequestEntityTooLarge",
        `Upload ranges must be smaller than ${MAX_UPLOAD_CHUNK_BYTES} bytes (4 MB); split the file into smaller ranges.`,
      );
    } else {
      ctx.counters.increment("graph.upload.chunks");
      const result = service.uploads.put(session, req.headers["content-range"], body);
      response = result.response;
      if (result.complete) {
        const record = await service.view.message(session.owner.upn, session.messageId);
        if (!record)
          throw new GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.");
        const added = await attach({ service, mailbox: session.owner }, record, {
          filename: session.name,
          content: service.uploads.content(session),
          contentType: session.contentType,
          ...(session.isInline ? { isInline: true } : {}),
          ...(session.contentId ? { contentId: session.contentId } : {}),
        });
        response = {
          status: 201,
          headers: {
            Location: service.uploads.attachmentLocation(session, attachmentId(added.record.id, added.index)),
          },
        };
      }
    }
  } catch (error) {
    response = errorResponse(error, responseIds);
  }
  if (fault?.after) response = faultResponse(fault, responseIds) ?? response;
  send(response);
}

function failSafe(res: ServerResponse, error: unknown): void {
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(500, { "Content-Type": "application/json" });
    res.end(
      JSON.stringify({
        error: {
          code: "InternalServerError",
          message: String(error instanceof Error ? error.message : error),
        },
      }),
    );
  } else res.destroy();
}
