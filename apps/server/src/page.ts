import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { ErrorBody } from "./http-errors.js";

// This file sits directly under src/ and is bundled into dist/main.js: "../public" is the package's
// public/ folder from both places.
const PUBLIC_DIR = new URL("../public/", import.meta.url);

const FILES: Record<string, string> = {
  "/": "index.html",
  "/app.js": "app.js",
  "/style.css": "style.css",
};

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

// The page shows mail from anyone: message HTML goes into a sandboxed iframe without scripts, and the
// page itself may only load its own files and talk to its own API.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
  "connect-src 'self'; frame-src 'self' about:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The web page (plain HTML + JS, no build step), served on the API's own origin. */
export async function pageRoutes(app: FastifyInstance) {
  // Any path nobody serves answers in the API's error shape (ErrorBody), not Fastify's own
  // {statusCode,error,message}: clients parse one shape everywhere.
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: {
        code: "NOT_FOUND",
        message: `no route ${request.method} ${request.url.split("?")[0]!.slice(0, 200)}`,
        hint: "See /docs for the API's routes; the page is at /.",
      },
    } satisfies ErrorBody),
  );
  for (const [route, file] of Object.entries(FILES)) {
    const body = readFileSync(new URL(file, PUBLIC_DIR));
    const type = TYPES[file.split(".").pop()!]!;
    app.get(route, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .header("content-type", type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache")
        .send(body),
    );
  }
}

// Registered without encapsulation so that the not-found handler above is the whole server's.
(pageRoutes as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;
