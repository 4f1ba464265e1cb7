import { hintFor, isM365MailError, type Logger, messageFor } from "@m365-mail/core";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

export const errorBodySchema = {
  $id: "Error",
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string" }, message: { type: "string" }, hint: { type: "string" } },
      required: ["code", "message"],
    },
  },
} as const;

// Problems of the Microsoft 365 side (settings, sign-in) are the gateway's, not the client's request.
const STATUS_OF: Record<string, number> = {
  MESSAGE_INVALID: 400,
  MESSAGE_TOO_LARGE: 400,
  NOT_FOUND: 404,
  NOT_SUPPORTED: 501,
  THROTTLED: 503,
  TIMEOUT: 504,
  CONNECTION_FAILED: 502,
  SERVER_ERROR: 502,
  INVALID_RESPONSE: 502,
  ABORTED: 503,
};

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Ajv errors as one sentence a person can act on: which field, what is wrong with it. */
export function schemaErrorFormatter(errors: AjvError[], dataVar: string): Error {
  const first = errors[0];
  if (!first) return new Error(`${dataVar} is invalid`);
  const where = `${dataVar}${first.instancePath.replace(/\//g, ".")}`;
  let message: string;
  if (first.keyword === "additionalProperties") {
    message = `${where} has an unknown field "${String(first.params.additionalProperty)}"`;
  } else if (first.keyword === "anyOf") {
    message = `${where} must be an address string or an array of them`;
  } else {
    message = `${where} ${first.message ?? "is invalid"}`;
  }
  return new Error(message);
}

/** Maps any error to an HTTP answer without leaking internals: M365MailErrors keep code and hint. */
export function errorHandler(logger: Logger) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (isM365MailError(error)) {
      const status =
        error.status &&
        ((error.status >= 400 && error.status < 500) || error.status === 503) &&
        (error.source === "server" || error.source === "outbox")
          ? error.status
          : (STATUS_OF[error.code] ?? 502);
      if (status >= 500)
        logger.warn("request failed", {
          route: request.routeOptions?.url,
          code: error.code,
          message: error.message,
        });
      if (error.retryAfterSeconds) reply.header("retry-after", String(error.retryAfterSeconds));
      const body: ErrorBody = {
        // Hints in the operator's words: environment variables, not library options.
        error: {
          code: error.code,
          message: messageFor(error, "server"),
          ...(error.hint ? { hint: hintFor(error, "server") } : {}),
        },
      };
      return reply.status(status).send(body);
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      return reply
        .status(400)
        .send({ error: { code: "REQUEST_INVALID", message: error.message } } satisfies ErrorBody);
    }
    if (fastifyError.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.status(413).send({
        error: {
          code: "MESSAGE_TOO_LARGE",
          message: "the request body is over this server's limit",
          hint: "Send smaller attachments, or raise MAX_ATTACHMENT_BYTES.",
        },
      } satisfies ErrorBody);
    }
    const status = fastifyError.statusCode ?? 500;
    if (status < 500) {
      return reply
        .status(status)
        .send({ error: { code: "REQUEST_INVALID", message: error.message } } satisfies ErrorBody);
    }
    logger.error("unexpected error", { route: request.routeOptions?.url, error: String(error) });
    return reply
      .status(500)
      .send({ error: { code: "INTERNAL", message: "internal error" } } satisfies ErrorBody);
  };
}
