import type { GraphPrincipal } from "./graph-auth.js";
import { badRequest, type GraphError, graphErrorBody } from "./graph-error.js";
import type { GraphService } from "./graph-service.js";
import type { GraphRequest, GraphResponse } from "./graph-types.js";
import { errorResponse, faultResponse } from "./http-io.js";

/** Graph's JSON batching limits. Source: https://learn.microsoft.com/en-us/graph/json-batching */
export const MAX_BATCH_REQUESTS = 20;
/** Outlook runs at most this many steps of one batch at once per mailbox. */
export const BATCH_PARALLEL_PER_MAILBOX = 4;

interface BatchStepInput {
  id?: unknown;
  method?: unknown;
  url?: unknown;
  headers?: unknown;
  body?: unknown;
  dependsOn?: unknown;
}

interface Step {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  dependsOn: string[];
}

export interface BatchStepResponse {
  id: string;
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

const invalidPayload = (detail?: string): GraphError =>
  badRequest(detail ? `Invalid batch payload format. ${detail}` : "Invalid batch payload format.");

/** Checks the whole batch first: a malformed batch fails as one 400, like Graph. */
function parseSteps(body: Buffer): Step[] {
  let payload: { requests?: unknown };
  try {
    payload = JSON.parse(body.toString("utf8")) as { requests?: unknown };
  } catch {
    throw invalidPayload();
  }
  if (!payload || typeof payload !== "object" || !Array.isArray(payload.requests)) throw invalidPayload();
  const inputs = payload.requests as BatchStepInput[];
  if (inputs.length === 0) throw invalidPayload("The batch contains no requests.");
  if (inputs.length > MAX_BATCH_REQUESTS) {
    throw badRequest(
      `Invalid batch payload format. The number of requests in the batch exceeds the limit of ${MAX_BATCH_REQUESTS}.`,
    );
  }
  const seen = new Set<string>();
  const steps = inputs.map((input): Step => {
    if (!input || typeof input !== "object") throw invalidPayload();
    const id = typeof input.id === "number" ? String(input.id) : input.id;
    if (typeof id !== "string" || id === "") throw invalidPayload("Every request needs an id.");
    if (seen.has(id.toLowerCase())) throw invalidPayload(`The request id '${id}' is not unique.`);
    seen.add(id.toLowerCase());
    if (typeof input.method !== "string" || typeof input.url !== "string" || input.url === "")
      throw invalidPayload();
    // Step URLs are relative to the version root: an absolute URL breaks the whole batch.
    if (/^[a-z][a-z0-9+.-]*:/i.test(input.url)) throw invalidPayload();
    const headers: Record<string, string> = {};
    if (input.headers && typeof input.headers === "object") {
      for (const [name, value] of Object.entries(input.headers as Record<string, unknown>))
        headers[name.toLowerCase()] = String(value);
    }
    const dependsOn = input.dependsOn === undefined ? [] : input.dependsOn;
    if (!Array.isArray(dependsOn) || dependsOn.some((d) => typeof d !== "string")) throw invalidPayload();
    return {
      id,
      method: input.method.toUpperCase(),
      url: input.url,
      headers,
      body: input.body,
      dependsOn: dependsOn as string[],
    };
  });
  const ids = new Set(steps.map((step) => step.id.toLowerCase()));
  for (const step of steps) {
    for (const dependency of step.dependsOn) {
      if (!ids.has(dependency.toLowerCase()) || dependency.toLowerCase() === step.id.toLowerCase()) {
        throw invalidPayload(
          `The dependsOn value '${dependency}' of request '${step.id}' names no other request.`,
        );
      }
    }
  }
  return steps;
}

function stepBody(step: Step): Buffer {
  if (step.body === undefined || step.body === null) return Buffer.alloc(0);
  if (typeof step.body === "string") {
    const contentType = step.headers["content-type"] ?? "";
    // A base64 MIME message (sendMail) is sent as the text itself; other strings are base64 binary.
    return contentType.toLowerCase().startsWith("text/plain")
      ? Buffer.from(step.body, "utf8")
      : Buffer.from(step.body, "base64");
  }
  return Buffer.from(JSON.stringify(step.body));
}

function toStepResponse(id: string, response: GraphResponse): BatchStepResponse {
  const headers: Record<string, string> = { ...(response.headers ?? {}) };
  let body: unknown;
  if (response.json !== undefined) {
    headers["Content-Type"] =
      response.contentType ??
      "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
    body = response.json;
  } else if (response.raw !== undefined) {
    headers["Content-Type"] = response.contentType ?? "application/octet-stream";
    body = response.raw.toString("base64");
  }
  return { id, status: response.status, headers, ...(body !== undefined ? { body } : {}) };
}

/**
 * `POST /v1.0/$batch`: up to 20 steps, `dependsOn` ordering, 424 for steps whose dependency failed,
 * at most 4 steps at once per mailbox. Each step is a full Graph call (auth, permissions, throttling,
 * faults); the outer answer is 200 whatever the steps did.
 */
export async function runBatch(
  service: GraphService,
  principal: GraphPrincipal,
  body: Buffer,
  ids: { requestId: string; clientRequestId: string },
): Promise<GraphResponse> {
  const steps = parseSteps(body);
  service.ctx.counters.increment("graph.batch");
  const results = new Map<string, BatchStepResponse>();
  const running = new Map<string, number>();
  const pending = [...steps];
  const inFlight = new Set<Promise<void>>();
  const limit = () => Math.max(1, Math.min(BATCH_PARALLEL_PER_MAILBOX, service.throttle.current.concurrency));

  const keyOf = (step: Step, request: GraphRequest) => service.mailboxKeyOf(request) ?? `#${step.id}`;

  while (pending.length > 0 || inFlight.size > 0) {
    let started = false;
    for (let i = 0; i < pending.length; i++) {
      const step = pending[i]!;
      const deps = step.dependsOn.map(
        (d) => [...results.entries()].find(([key]) => key.toLowerCase() === d.toLowerCase())?.[1],
      );
      if (deps.some((d) => d === undefined)) continue;
      const request = buildRequest(step, principal, ids);
      const key = keyOf(step, request);
      if (deps.some((d) => d!.status >= 400)) {
        pending.splice(i--, 1);
        results.set(step.id, {
          id: step.id,
          status: 424,
          headers: { "Content-Type": "application/json" },
          body: graphErrorBody(
            "FailedDependency",
            "Dependent request failed.",
            ids.requestId,
            ids.clientRequestId,
          ),
        });
        started = true;
        continue;
      }
      if ((running.get(key) ?? 0) >= limit()) continue;
      pending.splice(i--, 1);
      running.set(key, (running.get(key) ?? 0) + 1);
      started = true;
      const task = runStep(service, step, request, ids)
        .then((response) => {
          results.set(step.id, response);
        })
        .finally(() => {
          running.set(key, (running.get(key) ?? 1) - 1);
          inFlight.delete(task);
        });
      inFlight.add(task);
    }
    if (!started && inFlight.size > 0) await Promise.race(inFlight);
    else if (!started && pending.length > 0) {
      // Unreachable dependencies (a cycle): Graph rejects such a batch.
      throw invalidPayload("The dependsOn values form a cycle.");
    }
  }
  return { status: 200, json: { responses: steps.map((step) => results.get(step.id)!) } };
}

function buildRequest(
  step: Step,
  principal: GraphPrincipal,
  ids: { requestId: string; clientRequestId: string },
): GraphRequest {
  const url = step.url.startsWith("/") ? step.url : `/${step.url}`;
  const question = url.indexOf("?");
  const path = question < 0 ? url : url.slice(0, question);
  const query = new URLSearchParams(question < 0 ? "" : url.slice(question + 1));
  return {
    method: step.method,
    path,
    query,
    headers: step.headers,
    body: stepBody(step),
    requestId: ids.requestId,
    clientRequestId: step.headers["client-request-id"] ?? ids.clientRequestId,
    principal,
    inBatch: true,
  };
}

async function runStep(
  service: GraphService,
  step: Step,
  request: GraphRequest,
  ids: { requestId: string; clientRequestId: string },
): Promise<BatchStepResponse> {
  service.ctx.counters.increment("graph.batch.steps");
  service.ctx.counters.increment("graph.requests");
  const stepIds = { requestId: ids.requestId, clientRequestId: request.clientRequestId };
  const fault = service.ctx.faults.take("graph", `/v1.0${request.path}`);
  if (fault && !fault.after) {
    const injected = faultResponse(fault, stepIds);
    if (injected) return toStepResponse(step.id, injected);
  }
  if (step.body !== undefined && step.body !== null && !step.headers["content-type"]) {
    return toStepResponse(
      step.id,
      errorResponse(badRequest("Content-Type header must be specified when a body is present."), stepIds),
    );
  }
  let response: GraphResponse;
  try {
    response = await service.dispatch(
      fault?.kind === "delay" ? { ...request, delayMs: fault.delayMs ?? 1000 } : request,
    );
  } catch (error) {
    response = errorResponse(error, stepIds);
  }
  if (response.status === 429) service.ctx.counters.increment("graph.429");
  if (fault?.after) response = faultResponse(fault, stepIds) ?? response;
  return toStepResponse(step.id, response);
}
