import { M365MailError } from "@m365-mail/core";
import type { FastifyReply } from "fastify";

/**
 * Listings answer a page: the body stays the array it always was (the page and existing clients read
 * it), and the next page's cursor comes in `Next-Cursor` and a `Link: <…>; rel="next"` header.
 * The cursor is opaque to clients: base64url JSON, checked on the way back in.
 */
export function encodeCursor(value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

export function decodeCursor<T extends Record<string, unknown>>(
  raw: string | undefined,
  valid: (value: Record<string, unknown>) => value is T,
): T | undefined {
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
  } catch {}
  if (!value || typeof value !== "object" || !valid(value as Record<string, unknown>)) {
    throw new M365MailError("MESSAGE_INVALID", "the cursor is not one this server gave out", {
      source: "server",
      status: 400,
      hint: "Pass the Next-Cursor header of the previous page unchanged, with the same other query parameters, or leave cursor out for the first page.",
    });
  }
  return value as T;
}

export const NEXT_CURSOR_HEADER = "next-cursor";

/** Sets the headers for the next page (none on the last page). */
export function setNextPage(reply: FastifyReply, url: string, next: string | undefined): void {
  if (!next) return;
  const link = new URL(url, "http://x");
  link.searchParams.set("cursor", next);
  reply.header(NEXT_CURSOR_HEADER, next);
  reply.header("link", `<${link.pathname}${link.search}>; rel="next"`);
}

/** For the OpenAPI document: the query parameter and the answer's headers. */
export const cursorQuery = {
  type: "string",
  maxLength: 1000,
  description: "The `Next-Cursor` header of the previous page; leave out for the first page.",
} as const;

export const pageHeaders = {
  "next-cursor": {
    type: "string",
    description: "Opaque cursor of the next page; absent on the last page.",
  },
  link: { type: "string", description: '`<path?…&cursor=…>; rel="next"`; absent on the last page.' },
} as const;
